import assert from "node:assert/strict";
import {
  decodeManifest,
  defaultEd25519,
  MANIFEST_FORMAT_ROLLBACK,
  randomPrivateKey,
  type ReleaseManifest,
  signManifest,
  UPDATE_REFUSED_ROLLBACK,
  UPDATE_REFUSED_UNSIGNED,
  UPDATE_SUCCESS,
} from "../../srup/mod.ts";
import { agentFixture, fetchReturning, sha256 } from "./_fixture.ts";

const NOW = Date.UTC(2026, 11, 2, 12);
const KEY = randomPrivateKey();
const PUB = await (await defaultEd25519()).getPublicKey(KEY);
const V7 = new TextEncoder().encode("firmware 7\n".repeat(50));
const V5 = new TextEncoder().encode("firmware 5\n".repeat(50));

async function manifest(bytes: Uint8Array, patch: Partial<ReleaseManifest>) {
  return await signManifest({
    digest: await sha256(bytes),
    size: bytes.length,
    name: "fw",
    version: "x",
    securityVersion: 0,
    hardware: [],
    ...patch,
  }, KEY);
}

Deno.test("a rollback range round-trips in a format 2 manifest, under the signature", async () => {
  const bytes = await manifest(V5, { securityVersion: 5, rollbackRange: { from: 6, to: 7 } });
  assert.equal(bytes[0], MANIFEST_FORMAT_ROLLBACK);
  const decoded = decodeManifest(bytes);
  assert.deepEqual(decoded.rollbackRange, { from: 6, to: 7 });
  // Nothing without a range changes: format 1, no field.
  const plain = decodeManifest(await manifest(V5, { securityVersion: 5 }));
  assert.equal(plain.bytes[0], 1);
  assert.equal(plain.rollbackRange, undefined);
  // A range that runs backwards does not decode; one not above the release's own is not signed.
  const backwards = bytes.slice();
  new DataView(backwards.buffer).setUint32(backwards.length - 64 - 8, 9);
  assert.throws(() => decodeManifest(backwards), /runs backwards/);
  await assert.rejects(
    manifest(V5, { securityVersion: 6, rollbackRange: { from: 6, to: 7 } }),
    RangeError,
  );
});

Deno.test("a signed rollback release installs below the running security version only within its range", async (t) => {
  let serve: Uint8Array = V7;
  const served = fetchReturning(() => new Response(serve as Uint8Array<ArrayBuffer>));
  const f = await agentFixture({ fetch: served.fetch, releaseKeys: [PUB] });
  f.clock.set(NOW);
  const agent = await f.make();
  async function send(bytes: Uint8Array, signed: Uint8Array): Promise<number> {
    serve = bytes;
    const { frame } = await f.initiate({
      url: "https://updates.example/fw.bin",
      digest: await sha256(bytes),
      version: 3,
      manifest: signed,
      notAfter: BigInt(NOW + 60_000),
    });
    await agent.handleFrame(frame);
    return f.replies.at(-1)!.message.status;
  }
  await t.step("running security version 7", async () => {
    assert.equal(await send(V7, await manifest(V7, { securityVersion: 7 })), UPDATE_SUCCESS);
    await agent.handleFrame((await f.activate(f.replies.at(-1)!.message.token)).frame);
    assert.equal((await f.store.load()).current?.securityVersion, 7);
  });
  await t.step("an ordinary release of version 5: refused (0xFA)", async () => {
    assert.equal(
      await send(V5, await manifest(V5, { securityVersion: 5 })),
      UPDATE_REFUSED_ROLLBACK,
    );
  });
  await t.step("a rollback release of 5 for 8 to 9: 7 is outside, refused (0xFA)", async () => {
    const signed = await manifest(V5, { securityVersion: 5, rollbackRange: { from: 8, to: 9 } });
    assert.equal(await send(V5, signed), UPDATE_REFUSED_ROLLBACK);
  });
  await t.step(
    "the range is signed: widened by the server, the signature fails (0xFB)",
    async () => {
      const signed = await manifest(V5, { securityVersion: 5, rollbackRange: { from: 8, to: 9 } });
      new DataView(signed.buffer).setUint32(signed.length - 64 - 8, 6);
      assert.equal(await send(V5, signed), UPDATE_REFUSED_UNSIGNED);
    },
  );
  await t.step(
    "a rollback release of 5 for 6 to 7: installs, and 5 is the floor from then on",
    async () => {
      const signed = await manifest(V5, { securityVersion: 5, rollbackRange: { from: 6, to: 7 } });
      assert.equal(await send(V5, signed), UPDATE_SUCCESS);
      await agent.handleFrame((await f.activate(f.replies.at(-1)!.message.token)).frame);
      assert.equal((await f.store.load()).current?.securityVersion, 5);
    },
  );
});
