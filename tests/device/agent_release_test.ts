import assert from "node:assert/strict";
import {
  defaultEd25519,
  randomPrivateKey,
  type ReleaseManifest,
  signManifest,
  UPDATE_FAIL_FILE,
  UPDATE_REFUSED_EXPIRED,
  UPDATE_REFUSED_HARDWARE,
  UPDATE_REFUSED_ROLLBACK,
  UPDATE_REFUSED_UNSIGNED,
  UPDATE_SUCCESS,
} from "../../srup/mod.ts";
import { agentFixture, fetchReturning, sha256 } from "./_fixture.ts";

const FIRMWARE = new TextEncoder().encode("firmware 1.4.2\n".repeat(500));
const URL = "https://updates.example/fw.bin";
/** A clock reading the agent trusts: after its 2025 floor. */
const NOW = Date.UTC(2026, 11, 2, 12);
const RELEASE_KEY = randomPrivateKey();
const RELEASE_PUB = await (await defaultEd25519()).getPublicKey(RELEASE_KEY);

async function release(patch: Partial<ReleaseManifest> = {}, key = RELEASE_KEY) {
  return await signManifest({
    digest: await sha256(FIRMWARE),
    size: FIRMWARE.length,
    name: "fw",
    version: "1.4.2",
    securityVersion: 7,
    hardware: [],
    ...patch,
  }, key);
}

/** An agent with the release key, at NOW, served FIRMWARE (or `body`). */
async function releaseAgent(
  options: { body?: () => Response; trustClock?: boolean; hardware?: string; now?: number } = {},
) {
  const served = fetchReturning(options.body ?? (() => new Response(FIRMWARE)));
  const f = await agentFixture({
    fetch: served.fetch,
    releaseKeys: [RELEASE_PUB],
    trustClock: options.trustClock,
    hardware: options.hardware,
  });
  f.clock.set(options.now ?? NOW);
  const agent = await f.make();
  const digest = await sha256(FIRMWARE);
  /** Sends a version 3 INITIATE; returns the status replied. */
  async function send(manifest: Uint8Array | undefined, notAfter = BigInt(NOW + 60_000)) {
    const { frame } = await f.initiate(
      manifest === undefined
        ? { url: URL, digest }
        : { url: URL, digest, version: 3, manifest, notAfter },
    );
    await agent.handleFrame(frame);
    return f.replies.at(-1)!.message.status;
  }
  return { f, agent, send, calls: served.calls };
}

Deno.test("an agent with release keys installs a release one of them signed, replying in version 3", async () => {
  const { f, agent, send, calls } = await releaseAgent();
  assert.equal(await send(await release()), UPDATE_SUCCESS);
  assert.equal(f.replies.at(-1)!.message.version, 3);
  assert.deepEqual(calls, [URL]);
  await agent.handleFrame((await f.activate(f.replies.at(-1)!.message.token)).frame);
  assert.equal((await f.store.load()).current?.securityVersion, 7);
});

Deno.test("an agent with release keys refuses what no release key signed: 0xFB, nothing fetched", async (t) => {
  const { send, calls, f } = await releaseAgent();
  await t.step("a version 2 INITIATE, signed by the server key alone", async () => {
    assert.equal(await send(undefined), UPDATE_REFUSED_UNSIGNED);
    assert.equal(f.replies.at(-1)!.message.version, 2);
  });
  await t.step("a manifest signed by another key (the server's, say)", async () => {
    assert.equal(await send(await release({}, randomPrivateKey())), UPDATE_REFUSED_UNSIGNED);
  });
  await t.step("a manifest with a byte changed after signing", async () => {
    const bytes = await release();
    bytes[50]! ^= 1; // the security version's low byte
    assert.equal(await send(bytes), UPDATE_REFUSED_UNSIGNED);
  });
  await t.step("a valid manifest of another file", async () => {
    assert.equal(
      await send(await release({ digest: new Uint8Array(32) })),
      UPDATE_REFUSED_UNSIGNED,
    );
  });
  await t.step("bytes that are no manifest", async () => {
    assert.equal(await send(new Uint8Array([1, 2, 3])), UPDATE_REFUSED_UNSIGNED);
  });
  await t.step("an expired release", async () => {
    assert.equal(await send(await release({ expiresAt: NOW - 1000 })), UPDATE_REFUSED_UNSIGNED);
  });
  assert.deepEqual(calls, []);
});

Deno.test("anti-rollback: a lower security version is refused with 0xFA; equal and higher install", async () => {
  const { f, agent, send, calls } = await releaseAgent();
  assert.equal(await send(await release({ securityVersion: 7 })), UPDATE_SUCCESS);
  await agent.handleFrame((await f.activate(f.replies.at(-1)!.message.token)).frame);
  assert.equal(
    await send(await release({ securityVersion: 6, version: "1.3.0" })),
    UPDATE_REFUSED_ROLLBACK,
  );
  assert.equal(calls.length, 1, "the downgrade was never fetched");
  assert.equal((await f.store.load()).current?.securityVersion, 7);
  // Same digest as running: staged without a fetch, at the same security version.
  assert.equal(await send(await release({ securityVersion: 7 })), UPDATE_SUCCESS);
  assert.equal(await send(await release({ securityVersion: 8 })), UPDATE_SUCCESS);
});

Deno.test("freshness: an INITIATE past its not-after is refused with 0xF9 on a trusted clock only", async (t) => {
  await t.step("trusted clock: refused, nothing fetched", async () => {
    const { send, calls } = await releaseAgent();
    assert.equal(await send(await release(), BigInt(NOW - 1)), UPDATE_REFUSED_EXPIRED);
    assert.deepEqual(calls, []);
  });
  await t.step("exactly at not-after: still accepted", async () => {
    const { send } = await releaseAgent();
    assert.equal(await send(await release(), BigInt(NOW)), UPDATE_SUCCESS);
  });
  await t.step("a clock declared untrusted: accepted", async () => {
    const { send } = await releaseAgent({ trustClock: false });
    assert.equal(await send(await release(), BigInt(NOW - 1)), UPDATE_SUCCESS);
  });
  await t.step("a clock that reads before 2025 (never set): accepted", async () => {
    const { send } = await releaseAgent({ now: Date.UTC(1970, 0, 2) });
    assert.equal(await send(await release(), 1n), UPDATE_SUCCESS);
  });
});

Deno.test("hardware: a manifest naming other hardware is refused with 0xF8", async () => {
  const { send } = await releaseAgent({ hardware: "rpi4" });
  assert.equal(await send(await release({ hardware: ["rpi5"] })), UPDATE_REFUSED_HARDWARE);
  assert.equal(await send(await release({ hardware: ["rpi5", "rpi4"] })), UPDATE_SUCCESS);
  const { send: sendNoId } = await releaseAgent();
  assert.equal(await sendNoId(await release({ hardware: ["rpi4"] })), UPDATE_REFUSED_HARDWARE);
});

Deno.test("endless data: a download stops at the signed size, +0 bytes, with 0xFE", async (t) => {
  await t.step("a body longer than signed, no Content-Length: stopped at size + 1", async () => {
    let pulled = 0;
    const endless = () =>
      new Response(
        new ReadableStream({
          pull(controller) {
            pulled += 1024;
            controller.enqueue(new Uint8Array(1024));
          },
        }),
      );
    const { send, f } = await releaseAgent({ body: endless });
    assert.equal(await send(await release()), UPDATE_FAIL_FILE);
    assert.ok(pulled < FIRMWARE.length + 64 * 1024, `read ${pulled} bytes of an endless body`);
    assert.equal((await f.store.load()).staged, undefined);
  });
  await t.step("a Content-Length above the signed size: refused before the body", async () => {
    const { send } = await releaseAgent({
      body: () =>
        new Response(new Uint8Array([...FIRMWARE, 0]), {
          headers: { "content-length": String(FIRMWARE.length + 1) },
        }),
    });
    assert.equal(await send(await release()), UPDATE_FAIL_FILE);
  });
  await t.step("exactly the signed size: installed", async () => {
    const { send } = await releaseAgent();
    assert.equal(await send(await release()), UPDATE_SUCCESS);
  });
});

Deno.test("an agent without release keys takes version 2 as before, and version 3 unsigned checks", async () => {
  const served = fetchReturning(() => new Response(FIRMWARE));
  const f = await agentFixture({ fetch: served.fetch });
  f.clock.set(NOW);
  const agent = await f.make();
  const digest = await sha256(FIRMWARE);
  await agent.handleFrame((await f.initiate({ url: URL, digest })).frame);
  assert.equal(f.replies.at(-1)!.message.status, UPDATE_SUCCESS);
  const other = await release({}, randomPrivateKey());
  const late = await f.initiate({ url: URL, digest, version: 3, manifest: other, notAfter: 1n });
  await agent.handleFrame(late.frame);
  assert.equal(f.replies.at(-1)!.message.status, UPDATE_REFUSED_EXPIRED);
});
