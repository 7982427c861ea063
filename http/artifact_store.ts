/** Artifacts on disk, named by their SHA-256: streamed in, hashed on the way, renamed into place. */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { exists, syncDirectory } from "../io/files.ts";

/** A stored artifact. */
export interface StoredArtifact {
  digest: string;
  size: number;
  path: string;
}

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

/** What {@linkcode ArtifactStore.put} returns: the artifact, and whether this put made its file. */
export interface PutArtifact extends StoredArtifact {
  /** False when a file with this digest was stored already. */
  created: boolean;
}

/** Options for {@linkcode ArtifactStore.put}. */
export interface PutOptions {
  /** The SHA-256 (lowercase hex) the bytes must have; others are refused. */
  digest?: string;
}

/** Options for {@linkcode ArtifactStore}. */
export interface ArtifactStoreOptions {
  /** Files up to this size are kept in memory once read; default 1 MiB. */
  cacheFileBytes?: number;
  /** Bytes the memory cache holds in all, first cached first out; default 64 MiB. */
  cacheBytes?: number;
}

/** Content-addressed artifact files under one directory. */
export class ArtifactStore {
  readonly #dir: string;
  readonly #cacheFileBytes: number;
  readonly #cacheBytes: number;
  // Content-addressed files never change, so a cached copy cannot go stale. A fleet fetches the
  // same small file thousands of times a second; each from disk cost a stat, an open and a stream.
  readonly #cache = new Map<string, Uint8Array<ArrayBuffer>>();
  #cached = 0;

  constructor(dir: string, options: ArtifactStoreOptions = {}) {
    this.#dir = dir;
    this.#cacheFileBytes = options.cacheFileBytes ?? 1024 * 1024;
    this.#cacheBytes = options.cacheBytes ?? 64 * 1024 * 1024;
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
      return { digest, size, path, created };
    } catch (error) {
      if (!closed) file.close();
      await Deno.remove(placed ?? temp).catch(() => {});
      throw error;
    }
  }

  /** Removes a stored artifact's file, as when its record could not be written. */
  async remove(digest: string): Promise<void> {
    if (!isDigest(digest)) return;
    const cached = this.#cache.get(digest);
    if (cached) {
      this.#cache.delete(digest);
      this.#cached -= cached.length;
    }
    await Deno.remove(join(this.#dir, digest)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }

  /** The stored artifact with this digest, or undefined. */
  async get(digest: string): Promise<StoredArtifact | undefined> {
    if (!isDigest(digest)) return undefined;
    const path = join(this.#dir, digest);
    const bytes = this.#cache.get(digest);
    if (bytes) return { digest, size: bytes.length, path };
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
   * above the per-file cache size (stream it from `path`) or one not stored.
   */
  async bytes(artifact: StoredArtifact): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const cached = this.#cache.get(artifact.digest);
    if (cached) return cached;
    if (artifact.size > this.#cacheFileBytes || artifact.size > this.#cacheBytes) return undefined;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await Deno.readFile(artifact.path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    if (bytes.length !== artifact.size) return undefined;
    for (const [digest, old] of this.#cache) {
      if (this.#cached + bytes.length <= this.#cacheBytes) break;
      this.#cache.delete(digest);
      this.#cached -= old.length;
    }
    this.#cache.set(artifact.digest, bytes);
    this.#cached += bytes.length;
    return bytes;
  }
}
