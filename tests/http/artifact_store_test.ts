import assert from "node:assert/strict";
import { join } from "node:path";
import { ArtifactStore, ArtifactTooLargeError } from "../../http/artifact_store.ts";

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
    const store = new ArtifactStore(dir);
    await store.init();
    const a = crypto.getRandomValues(new Uint8Array(40_000));
    const b = crypto.getRandomValues(new Uint8Array(25_000));
    const whole = new Uint8Array([...a, ...b]);
    const stored = await store.put(streamOf(a, b), 1_000_000);
    assert.equal(stored.digest, await sha256Hex(whole));
    assert.equal(stored.size, whole.length);
    assert.deepEqual(await Deno.readFile(join(dir, stored.digest)), whole);
    assert.deepEqual(await store.get(stored.digest), stored);
    assert.equal(await store.get("0".repeat(64)), undefined);
    assert.equal(await store.get("../etc/passwd"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ArtifactStore.put() rejects an upload over its cap and leaves no file behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new ArtifactStore(dir);
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

Deno.test("ArtifactStore.init() removes temp files a crash left behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(join(dir, ".upload-leftover"), new Uint8Array(3));
    await new ArtifactStore(dir).init();
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
