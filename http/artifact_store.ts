/** Artifacts on disk, named by their SHA-256: streamed in, hashed on the way, renamed into place. */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { syncDirectory } from "../io/files.ts";

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

const DIGEST_PATTERN = /^[0-9a-f]{64}$/;

/** Whether `text` is a lowercase hex SHA-256 digest. */
export function isDigest(text: string): boolean {
  return DIGEST_PATTERN.test(text);
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

  /** Streams `body` to disk, hashing it; at most `maxBytes` are accepted. */
  async put(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<StoredArtifact> {
    const temp = join(this.#dir, `.upload-${crypto.randomUUID()}`);
    const hash = createHash("sha256");
    let size = 0;
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
    try {
      for await (const chunk of body) {
        size += chunk.length;
        if (size > maxBytes) throw new ArtifactTooLargeError(maxBytes);
        hash.update(chunk);
        let written = 0;
        while (written < chunk.length) written += await file.write(chunk.subarray(written));
      }
      await file.sync();
    } catch (error) {
      file.close();
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
    file.close();
    const digest = hash.digest("hex");
    const path = join(this.#dir, digest);
    await Deno.rename(temp, path);
    await syncDirectory(this.#dir);
    return { digest, size, path };
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
