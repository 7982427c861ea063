import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ArtifactTooLargeError,
  DigestMismatchError,
  DirArtifactStore,
  EmptyArtifactError,
} from "../../http/artifact_store.ts";
import { downloadsApp } from "../../http/routes/artifacts.ts";

function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>))
    .toHex();
}

Deno.test("ArtifactStore.put() streams to a file named by its SHA-256", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new DirArtifactStore(dir);
    await store.init();
    const a = crypto.getRandomValues(new Uint8Array(40_000));
    const b = crypto.getRandomValues(new Uint8Array(25_000));
    const whole = new Uint8Array([...a, ...b]);
    const { created, ...stored } = await store.put(streamOf(a, b), 1_000_000);
    assert.equal(created, true);
    assert.equal(stored.digest, await sha256Hex(whole));
    assert.equal(stored.size, whole.length);
    assert.deepEqual(await Deno.readFile(join(dir, stored.digest)), whole);
    assert.deepEqual(await store.get(stored.digest), stored);
    assert.equal((await store.put(streamOf(whole), 1_000_000)).created, false);
    assert.equal(await store.get("0".repeat(64)), undefined);
    assert.equal(await store.get("../etc/passwd"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ArtifactStore.put() rejects an upload over its cap and leaves no file behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new DirArtifactStore(dir);
    await store.init();
    await assert.rejects(
      store.put(streamOf(new Uint8Array(600), new Uint8Array(600)), 1000),
      ArtifactTooLargeError,
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ArtifactStore.put() refuses an empty upload or the wrong digest, leaving no file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new DirArtifactStore(dir);
    await store.init();
    await assert.rejects(store.put(streamOf(), 1000), EmptyArtifactError);
    const bytes = new Uint8Array([1, 2, 3]);
    const actual = await sha256Hex(bytes);
    await assert.rejects(
      store.put(streamOf(bytes), 1000, { digest: "0".repeat(64) }),
      (error: unknown) =>
        error instanceof DigestMismatchError && error.actual === actual &&
        error.expected === "0".repeat(64),
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
    const stored = await store.put(streamOf(bytes), 1000, { digest: actual });
    assert.equal(stored.digest, actual);
    await Deno.remove(join(dir, actual));
    // A file whose record cannot be written is removed: it would download while the API says 404.
    await assert.rejects(
      store.put(streamOf(bytes), 1000, {
        digest: actual,
        record: (put) => {
          assert.equal(put.created, true);
          return Promise.reject(new Error("database down"));
        },
      }),
      /database down/,
    );
    assert.equal(await store.get(actual), undefined);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ArtifactStore.init() removes temp files a crash left behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(join(dir, ".upload-leftover"), new Uint8Array(3));
    await new DirArtifactStore(dir).init();
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ArtifactStore.bytes() keeps small files in memory, first cached first out", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new DirArtifactStore(dir, { cacheFileBytes: 1000, cacheBytes: 2500 });
    await store.init();
    const put = (size: number) => {
      const bytes = crypto.getRandomValues(new Uint8Array(size));
      return store.put(streamOf(bytes), 10_000).then(({ created: _, ...stored }) => ({
        stored,
        bytes,
      }));
    };
    const a = await put(800);
    assert.deepEqual(await store.bytes(a.stored), a.bytes);
    await Deno.remove(join(dir, a.stored.digest));
    assert.deepEqual(await store.bytes(a.stored), a.bytes, "served from memory");
    assert.deepEqual(await store.get(a.stored.digest), a.stored);

    const big = await put(1200);
    assert.equal(await store.bytes(big.stored), undefined, "above the per-file size: streamed");

    const c = await put(900);
    const d = await put(900);
    assert.deepEqual(await store.bytes(c.stored), c.bytes);
    assert.deepEqual(await store.bytes(d.stored), d.bytes);
    assert.equal(await store.get(a.stored.digest), undefined, "a was evicted to make room for d");
    assert.deepEqual(await store.bytes(c.stored), c.bytes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("downloadsApp streams a file the memory cache does not hold, Range included", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new DirArtifactStore(dir, { cacheFileBytes: 0 });
    await store.init();
    const bytes = new Uint8Array(200_000).map((_, i) => (i * 7919) % 251);
    const stored = await store.put(streamOf(bytes), 1_000_000);
    const app = downloadsApp(store);
    const whole = await app.request(`/${stored.digest}`);
    assert.equal(whole.status, 200);
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
    const part = await app.request(`/${stored.digest}`, {
      headers: { range: "bytes=70000-70099" },
    });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-length"), "100");
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(70_000, 70_100));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
