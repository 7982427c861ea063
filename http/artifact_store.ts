/**
 * Artifact stores: the interface, its errors, and artifacts on disk named by their SHA-256
 * (streamed in, hashed on the way, renamed into place). http/db_artifact_store.ts keeps them in
 * PostgreSQL instead.
 */
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import type { Db } from "../db/mod.ts";
import { exists, syncDirectory } from "../io/files.ts";

/** Where a stored artifact's bytes are: a file in a directory, or pieces in the database. */
export type ArtifactLocation = { path: string } | { blob: string };

/** A stored artifact. */
export type StoredArtifact = { digest: string; size: number } & ArtifactLocation;

/** Thrown when an upload exceeds its size cap; the partial file is removed. */
export class ArtifactTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`Artifact exceeds the upload limit of ${limit} bytes`);
    this.name = "ArtifactTooLargeError";
  }
}

/** Thrown for an upload of no bytes; no file is kept. */
export class EmptyArtifactError extends Error {
  constructor() {
    super("Empty body: send the artifact's bytes");
    this.name = "EmptyArtifactError";
  }
}

/** Thrown when an upload's bytes do not hash to the digest it was sent with; no file is kept. */
export class DigestMismatchError extends Error {
  constructor(readonly expected: string, readonly actual: string) {
    super(`The bytes' SHA-256 is "${actual}", not the "${expected}" given`);
    this.name = "DigestMismatchError";
  }
}

const DIGEST_PATTERN = /^[0-9a-f]{64}$/;

/** Whether `text` is a lowercase hex SHA-256 digest. */
export function isDigest(text: string): boolean {
  return DIGEST_PATTERN.test(text);
}

/** What {@linkcode ArtifactStore.put} returns: the artifact, and whether this put stored its bytes. */
export type PutArtifact = StoredArtifact & {
  /** False when bytes with this digest were stored already. */
  created: boolean;
};

/** Options for {@linkcode ArtifactStore.put}. */
export interface PutOptions {
  /** The SHA-256 (lowercase hex) the bytes must have; others are refused. */
  digest?: string;
  /**
   * Records the artifact once its bytes are stored: in the same transaction (`tx`) for a store in
   * the database. When it throws, the bytes this put stored are removed and the error passes on.
   */
  record?: (stored: PutArtifact, tx?: Db) => Promise<void>;
}

/** Uploaded artifacts, content-addressed: a directory ({@linkcode DirArtifactStore}) or the database. */
export interface ArtifactStore {
  /** Makes the store ready and clears what an earlier crash left behind. */
  init(): Promise<void>;
  /**
   * Streams `body` in, hashing it; at most `maxBytes` are accepted. An upload that is refused
   * (too large, empty, not the digest expected) or fails leaves nothing stored.
   */
  put(
    body: ReadableStream<Uint8Array>,
    maxBytes: number,
    options?: PutOptions,
  ): Promise<PutArtifact>;
  /** The stored artifact with this digest, or undefined. */
  get(digest: string): Promise<StoredArtifact | undefined>;
  /** The whole content of a small artifact, from memory after the first read; else undefined. */
  bytes(artifact: StoredArtifact): Promise<Uint8Array<ArrayBuffer> | undefined>;
  /** `length` bytes of the artifact from offset `start`, read as they are sent. */
  stream(
    artifact: StoredArtifact,
    start: number,
    length: number,
  ): Promise<ReadableStream<Uint8Array>>;
}

/** Options for the stores' memory cache of small artifacts. */
export interface ArtifactCacheOptions {
  /** Files up to this size are kept in memory once read; default 1 MiB. */
  cacheFileBytes?: number;
  /** Bytes the memory cache holds in all, first cached first out; default 64 MiB. */
  cacheBytes?: number;
}

/**
 * Small artifacts kept in memory. Content-addressed bytes never change, so a cached copy cannot
 * go stale, on this node or any other. A fleet fetches the same small file thousands of times a
 * second; each from storage cost a stat, an open and a stream (or a query).
 */
export class ArtifactCache {
  readonly #fileBytes: number;
  readonly #bytes: number;
  readonly #cache = new Map<string, { artifact: StoredArtifact; bytes: Uint8Array<ArrayBuffer> }>();
  #cached = 0;

  constructor(options: ArtifactCacheOptions = {}) {
    this.#fileBytes = options.cacheFileBytes ?? 1024 * 1024;
    this.#bytes = options.cacheBytes ?? 64 * 1024 * 1024;
  }

  /** Whether an artifact of this size is kept once read. */
  fits(size: number): boolean {
    return size <= this.#fileBytes && size <= this.#bytes;
  }

  /** The cached artifact with this digest and its bytes, or undefined. */
  get(digest: string): { artifact: StoredArtifact; bytes: Uint8Array<ArrayBuffer> } | undefined {
    return this.#cache.get(digest);
  }

  /** Keeps an artifact's bytes, evicting the oldest entries to make room. */
  set(artifact: StoredArtifact, bytes: Uint8Array<ArrayBuffer>): void {
    for (const [old, entry] of this.#cache) {
      if (this.#cached + bytes.length <= this.#bytes) break;
      this.#cache.delete(old);
      this.#cached -= entry.bytes.length;
    }
    this.#cache.set(artifact.digest, { artifact, bytes });
    this.#cached += bytes.length;
  }

  /** Forgets this digest. */
  delete(digest: string): void {
    const cached = this.#cache.get(digest);
    if (!cached) return;
    this.#cache.delete(digest);
    this.#cached -= cached.bytes.length;
  }
}

/** Options for {@linkcode DirArtifactStore}. */
export type ArtifactStoreOptions = ArtifactCacheOptions;

/** Content-addressed artifact files under one directory. */
export class DirArtifactStore implements ArtifactStore {
  readonly #dir: string;
  readonly #cache: ArtifactCache;

  constructor(dir: string, options: ArtifactStoreOptions = {}) {
    this.#dir = dir;
    this.#cache = new ArtifactCache(options);
  }

  /** Creates the directory and removes temp files an earlier crash left behind. */
  async init(): Promise<void> {
    await Deno.mkdir(this.#dir, { recursive: true });
    for await (const entry of Deno.readDir(this.#dir)) {
      if (entry.name.startsWith(".upload-")) await Deno.remove(join(this.#dir, entry.name));
    }
  }

  /**
   * Streams `body` to disk, hashing it; at most `maxBytes` are accepted. An upload that is refused
   * (too large, empty, not the digest expected) or fails (a read error, a full disk) leaves no file.
   */
  async put(
    body: ReadableStream<Uint8Array>,
    maxBytes: number,
    options: PutOptions = {},
  ): Promise<PutArtifact> {
    const temp = join(this.#dir, `.upload-${crypto.randomUUID()}`);
    const hash = createHash("sha256");
    let size = 0;
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
    let closed = false;
    let placed: string | undefined;
    try {
      for await (const chunk of body) {
        size += chunk.length;
        if (size > maxBytes) throw new ArtifactTooLargeError(maxBytes);
        hash.update(chunk);
        let written = 0;
        while (written < chunk.length) written += await file.write(chunk.subarray(written));
      }
      if (size === 0) throw new EmptyArtifactError();
      const digest = hash.digest("hex");
      if (options.digest !== undefined && options.digest !== digest) {
        throw new DigestMismatchError(options.digest, digest);
      }
      await file.sync();
      file.close();
      closed = true;
      const path = join(this.#dir, digest);
      const created = !(await exists(path));
      await Deno.rename(temp, path);
      if (created) placed = path;
      await syncDirectory(this.#dir);
      const stored = { digest, size, path, created };
      // A file without its record would download publicly while the API says 404.
      await options.record?.(stored);
      return stored;
    } catch (error) {
      if (!closed) file.close();
      if (placed) this.#cache.delete(basename(placed));
      await Deno.remove(placed ?? temp).catch(() => {});
      throw error;
    }
  }

  /** The stored artifact with this digest, or undefined. */
  async get(digest: string): Promise<StoredArtifact | undefined> {
    if (!isDigest(digest)) return undefined;
    const path = join(this.#dir, digest);
    const cached = this.#cache.get(digest);
    if (cached) return cached.artifact;
    try {
      const info = await Deno.stat(path);
      return { digest, size: info.size, path };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  /**
   * The whole content of a small artifact, from memory after the first read; undefined for one
   * above the per-file cache size (stream it) or one not stored.
   */
  async bytes(artifact: StoredArtifact): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const cached = this.#cache.get(artifact.digest);
    if (cached) return cached.bytes;
    if (!("path" in artifact) || !this.#cache.fits(artifact.size)) return undefined;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await Deno.readFile(artifact.path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    if (bytes.length !== artifact.size) return undefined;
    this.#cache.set(artifact, bytes);
    return bytes;
  }

  /** `length` bytes of the file from offset `start`, read as they are sent. */
  async stream(
    artifact: StoredArtifact,
    start: number,
    length: number,
  ): Promise<ReadableStream<Uint8Array>> {
    if (!("path" in artifact)) throw new TypeError(`Artifact "${artifact.digest}" is not a file`);
    const file = await Deno.open(artifact.path, { read: true });
    if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    let remaining = length;
    return file.readable.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          if (remaining <= 0) return;
          const part = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
          remaining -= part.length;
          controller.enqueue(part);
          if (remaining <= 0) controller.terminate();
        },
      }),
    );
  }
}
