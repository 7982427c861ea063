/**
 * Artifacts in PostgreSQL (FLOTILLA_ARTIFACT_STORE=db), so an upload to one node downloads from
 * every node on the database: pieces of about 1 MiB, written in the transaction that records the
 * artifact, read back a piece at a time.
 */
import { createHash } from "node:crypto";
import { type Db, deleteChunks, getStoredBlob, readChunk, writeChunk } from "../db/mod.ts";
import {
  ArtifactCache,
  type ArtifactCacheOptions,
  type ArtifactStore,
  ArtifactTooLargeError,
  DigestMismatchError,
  EmptyArtifactError,
  isDigest,
  type PutArtifact,
  type PutOptions,
  type StoredArtifact,
} from "./artifact_store.ts";

/** Options for {@linkcode DbArtifactStore}. */
export interface DbArtifactStoreOptions extends ArtifactCacheOptions {
  /** Bytes in one stored piece; default 1 MiB. Reads need no fixed size, so it may change. */
  chunkBytes?: number;
  /** Where artifacts stored before the switch to the database are still read from. */
  fallback?: ArtifactStore;
}

// A piece is one row: big enough that a 1 GiB file is 1,024 rows, small enough that one upload or
// download holds about two pieces in memory at a time.
const CHUNK_BYTES = 1024 * 1024;

/** Content-addressed artifacts whose bytes are rows of `artifact_chunks`. */
export class DbArtifactStore implements ArtifactStore {
  readonly #db: Db;
  readonly #chunkBytes: number;
  readonly #cache: ArtifactCache;
  readonly #fallback?: ArtifactStore;

  constructor(db: Db, options: DbArtifactStoreOptions = {}) {
    this.#db = db;
    this.#chunkBytes = options.chunkBytes ?? CHUNK_BYTES;
    if (!(this.#chunkBytes >= 1)) {
      throw new RangeError(`Invalid artifact piece size: ${this.#chunkBytes} is below 1`);
    }
    this.#cache = new ArtifactCache(options);
    this.#fallback = options.fallback;
  }

  /** Nothing to clear: an interrupted upload's transaction rolled back its pieces. */
  async init(): Promise<void> {
    await this.#fallback?.init();
  }

  /**
   * Streams `body` into pieces inside one transaction, hashing it, and calls `options.record` in
   * that transaction; a refused or failed upload (or record) rolls back, leaving no piece and no
   * row. Reads the body only as fast as pieces are written: one piece in memory at a time.
   */
  async put(
    body: ReadableStream<Uint8Array>,
    maxBytes: number,
    options: PutOptions = {},
  ): Promise<PutArtifact> {
    return await this.#db.transaction(async (tx) => {
      const blob = crypto.randomUUID();
      const hash = createHash("sha256");
      const piece = new Uint8Array(Math.min(this.#chunkBytes, maxBytes));
      let filled = 0;
      let size = 0;
      for await (let chunk of body) {
        size += chunk.length;
        if (size > maxBytes) throw new ArtifactTooLargeError(maxBytes);
        hash.update(chunk);
        while (chunk.length > 0) {
          const take = Math.min(chunk.length, piece.length - filled);
          piece.set(chunk.subarray(0, take), filled);
          filled += take;
          chunk = chunk.subarray(take);
          if (filled === piece.length) {
            await writeChunk(tx, blob, size - chunk.length - filled, piece);
            filled = 0;
          }
        }
      }
      if (filled > 0) await writeChunk(tx, blob, size - filled, piece.subarray(0, filled));
      if (size === 0) throw new EmptyArtifactError();
      const digest = hash.digest("hex");
      if (options.digest !== undefined && options.digest !== digest) {
        throw new DigestMismatchError(options.digest, digest);
      }
      const existing = await getStoredBlob(tx, digest);
      if (existing) await deleteChunks(tx, blob);
      const stored: PutArtifact = existing
        ? { ...existing, created: false }
        : { digest, size, blob, created: true };
      await options.record?.(stored, tx);
      if (!existing && (await getStoredBlob(tx, digest))?.blob !== blob) {
        // Another node recorded the digest first (or it was registered by URL): its row wins.
        await deleteChunks(tx, blob);
      }
      return stored;
    });
  }

  /** The stored artifact with this digest, or undefined. */
  async get(digest: string): Promise<StoredArtifact | undefined> {
    if (!isDigest(digest)) return undefined;
    // Served from memory, a small artifact downloads even while the database is away.
    const cached = this.#cache.get(digest);
    if (cached) return cached.artifact;
    return await getStoredBlob(this.#db, digest) ?? await this.#fallback?.get(digest);
  }

  /** The whole content of a small artifact, from memory after the first read; else undefined. */
  async bytes(artifact: StoredArtifact): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const cached = this.#cache.get(artifact.digest);
    if (cached) return cached.bytes;
    if (!("blob" in artifact)) return await this.#fallback?.bytes(artifact);
    if (!this.#cache.fits(artifact.size)) return undefined;
    const bytes = new Uint8Array(artifact.size);
    let at = 0;
    while (at < artifact.size) {
      const data = await readChunk(this.#db, artifact.blob, at, artifact.size - at);
      if (data.length === 0) return undefined;
      bytes.set(data, at);
      at += data.length;
    }
    this.#cache.set(artifact, bytes);
    return bytes;
  }

  /** `length` bytes of the artifact from offset `start`, one query per piece, as they are sent. */
  async stream(
    artifact: StoredArtifact,
    start: number,
    length: number,
  ): Promise<ReadableStream<Uint8Array>> {
    if (!("blob" in artifact)) {
      if (!this.#fallback) throw new TypeError(`Artifact "${artifact.digest}" is not stored`);
      return await this.#fallback.stream(artifact, start, length);
    }
    const db = this.#db;
    const { blob, digest } = artifact;
    const end = start + length;
    let at = start;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (at >= end) {
          controller.close();
          return;
        }
        const data = await readChunk(db, blob, at, Math.min(end - at, CHUNK_BYTES));
        if (data.length === 0) {
          controller.error(new Error(`Artifact "${digest}" ends at byte ${at}, before ${end}`));
          return;
        }
        at += data.length;
        controller.enqueue(data);
      },
    }, { highWaterMark: 0 });
  }
}
