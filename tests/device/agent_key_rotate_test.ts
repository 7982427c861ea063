import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ACTIVATE_SUCCESS,
  defaultEd25519,
  randomPrivateKey,
  toHex,
  UPDATE_SUCCESS,
} from "../../srup/mod.ts";
import {
  type DeviceStore,
  FileDeviceStore,
  MemoryDeviceStore,
  readState,
} from "../../device/mod.ts";
import { TEST_PRIVATE_KEY, TEST_PUBLIC_KEY } from "../_helpers.ts";
import { agentFixture, fetchReturning, sha256 } from "./_fixture.ts";

const NOW = Date.UTC(2026, 5, 1);
const FIRMWARE = new TextEncoder().encode("firmware\n");

async function keyPair(): Promise<{ privateKey: Uint8Array; publicKey: Uint8Array }> {
  const privateKey = randomPrivateKey();
  return { privateKey, publicKey: await (await defaultEd25519()).getPublicKey(privateKey) };
}

/** An agent on a trusted clock that downloads FIRMWARE for any URL. */
async function fixture(
  store: DeviceStore = new MemoryDeviceStore(),
  options: { trustClock?: boolean } = {},
) {
  const f = await agentFixture({
    store,
    ...fetchReturning(() => new Response(FIRMWARE)),
    ...options,
  });
  f.clock.set(NOW);
  return f;
}

Deno.test("an agent trusts the new key after a verified KEY_ROTATE and answers 0x10", async (t) => {
  const f = await fixture();
  const agent = await f.make();
  const next = await keyPair();
  const digest = await sha256(FIRMWARE);

  await t.step("the rotation is persisted and confirmed in version 2", async () => {
    const rotate = await f.keyRotate(next);
    await agent.handleFrame(rotate.frame);
    assert.equal(f.replies.length, 1);
    assert.equal(f.replies[0]!.message.status, ACTIVATE_SUCCESS);
    assert.deepEqual(f.replies[0]!.message.token, rotate.message.token);
    assert.equal(f.replies[0]!.message.version, 2);
    assert.deepEqual(agent.serverKey(), next.publicKey);
    const saved = await f.store.load();
    assert.equal(saved.serverKey, toHex(next.publicKey));
    assert.equal(saved.oldServerKey, toHex(TEST_PUBLIC_KEY));
    assert.equal(saved.oldKeyUntil, undefined);
    assert.equal(saved.sequences.values().next().value, rotate.message.sequence);
  });
  await t.step("an INITIATE and ACTIVATE signed by the new key install", async () => {
    const init = await f.initiate({ url: "https://updates.example/fw", digest }, next.privateKey);
    await agent.handleFrame(init.frame);
    assert.equal(f.replies[1]!.message.status, UPDATE_SUCCESS);
    await agent.handleFrame((await f.activate(init.message.token, {}, next.privateKey)).frame);
    assert.equal(f.replies[2]!.message.status, ACTIVATE_SUCCESS);
    assert.equal(agent.status().current, toHex(digest));
  });
  await t.step("with no overlap, a frame signed by the old key is dropped at once", async () => {
    const old = await f.initiate({ url: "https://updates.example/old", digest });
    await agent.handleFrame(old.frame);
    assert.equal(f.replies.length, 3);
    assert.equal(agent.rejections.get("bad_signature"), 1);
  });
  await t.step("a restarted agent still trusts only the new key", async () => {
    const restarted = await f.make();
    assert.deepEqual(restarted.serverKey(), next.publicKey);
    await restarted.handleFrame((await f.initiate({ url: "https://x.example/a", digest })).frame);
    assert.equal(restarted.rejections.get("bad_signature"), 1);
    assert.equal(f.replies.length, 3);
  });
});

Deno.test("the old key is accepted during the overlap only: until its time, or the first new-key frame", async (t) => {
  const digest = await sha256(FIRMWARE);
  await t.step("a trusted clock: old-key frames until the overlap ends, then dropped", async () => {
    const f = await fixture();
    const agent = await f.make();
    const next = await keyPair();
    await agent.handleFrame((await f.keyRotate(next, { overlap: 60_000n })).frame);
    assert.equal((await f.store.load()).oldKeyUntil, NOW + 60_000);
    f.clock.set(NOW + 59_999);
    await agent.handleFrame((await f.initiate({ url: "https://u.example/a", digest })).frame);
    assert.equal(f.replies[1]!.message.status, UPDATE_SUCCESS);
    f.clock.set(NOW + 60_000);
    await agent.handleFrame((await f.initiate({ url: "https://u.example/b", digest })).frame);
    assert.equal(f.replies.length, 2);
    assert.equal(agent.rejections.get("bad_signature"), 1);
  });
  await t.step("the first frame under the new key ends the overlap early", async () => {
    const f = await fixture();
    const agent = await f.make();
    const next = await keyPair();
    await agent.handleFrame((await f.keyRotate(next, { overlap: 3_600_000n })).frame);
    const init = await f.initiate({ url: "https://u.example/a", digest }, next.privateKey);
    await agent.handleFrame(init.frame);
    assert.equal(f.replies[1]!.message.status, UPDATE_SUCCESS);
    assert.equal((await f.store.load()).oldKeyUntil, undefined);
    await agent.handleFrame((await f.activate(init.message.token)).frame);
    assert.equal(f.replies.length, 2);
    assert.equal(agent.rejections.get("bad_signature"), 1);
  });
  await t.step("an untrusted clock: the overlap lasts until the first new-key frame", async () => {
    const f = await fixture(new MemoryDeviceStore(), { trustClock: false });
    const agent = await f.make();
    const next = await keyPair();
    await agent.handleFrame((await f.keyRotate(next, { overlap: 1_000n })).frame);
    assert.equal((await f.store.load()).oldKeyUntil, null);
    f.clock.set(NOW + 86_400_000);
    await agent.handleFrame((await f.initiate({ url: "https://u.example/a", digest })).frame);
    assert.equal(f.replies[1]!.message.status, UPDATE_SUCCESS);
    await agent.handleFrame(
      (await f.initiate({ url: "https://u.example/b", digest }, next.privateKey)).frame,
    );
    assert.equal(f.replies.length, 3);
    await agent.handleFrame((await f.initiate({ url: "https://u.example/c", digest })).frame);
    assert.equal(f.replies.length, 3);
    assert.equal(agent.rejections.get("bad_signature"), 1);
  });
});

Deno.test("KEY_ROTATE replay: a key already trusted is idempotent success; a non-current signer is dropped", async (t) => {
  const f = await fixture();
  const agent = await f.make();
  const next = await keyPair();
  const first = await f.keyRotate(next);
  await agent.handleFrame(first.frame);
  assert.equal(f.replies[0]!.message.status, ACTIVATE_SUCCESS);
  const sequence = (await f.store.load()).sequences.values().next().value;

  await t.step("the same frame again is a replay: dropped, nothing answered", async () => {
    await agent.handleFrame(first.frame);
    assert.equal(f.replies.length, 1);
    assert.equal(agent.rejections.get("bad_signature"), 0);
    assert.equal(agent.rejections.total, 1);
  });
  await t.step(
    "a retry signed by the old key naming the trusted key (its 0x10 was lost): 0x10, no counter moved",
    async () => {
      const retry = await f.keyRotate(next, { sequence: 1_000_000n });
      await agent.handleFrame(retry.frame);
      assert.equal(f.replies[1]!.message.status, ACTIVATE_SUCCESS);
      assert.deepEqual(f.replies[1]!.message.token, retry.message.token);
      const saved = await f.store.load();
      assert.equal(saved.sequences.values().next().value, sequence);
      assert.deepEqual(agent.serverKey(), next.publicKey);
    },
  );
  await t.step("a KEY_ROTATE to the trusted key signed by it: 0x10, nothing changes", async () => {
    await agent.handleFrame((await f.keyRotate(next, {}, next.privateKey)).frame);
    assert.equal(f.replies[2]!.message.status, ACTIVATE_SUCCESS);
    assert.deepEqual(agent.serverKey(), next.publicKey);
  });
  await t.step("the old key cannot rotate to a third key: dropped, no counter moved", async () => {
    const third = await keyPair();
    const before = (await f.store.load()).sequences.values().next().value;
    await agent.handleFrame((await f.keyRotate(third, { sequence: 2_000_000n })).frame);
    assert.equal(f.replies.length, 3);
    assert.equal(agent.rejections.get("bad_signature"), 1);
    assert.equal((await f.store.load()).sequences.values().next().value, before);
    assert.deepEqual(agent.serverKey(), next.publicKey);
  });
  await t.step("the new key can rotate on, to a third key", async () => {
    const third = await keyPair();
    await agent.handleFrame((await f.keyRotate(third, {}, next.privateKey)).frame);
    assert.equal(f.replies[3]!.message.status, ACTIVATE_SUCCESS);
    assert.deepEqual(agent.serverKey(), third.publicKey);
    assert.equal((await f.store.load()).oldServerKey, toHex(next.publicKey));
  });
});

Deno.test("an agent never trusts a key, nor moves its counter, for a KEY_ROTATE it has not verified", async (t) => {
  const f = await fixture();
  const agent = await f.make();
  const next = await keyPair();
  const attacker = await keyPair();
  const huge = 0xffff_ffff_ffff_fff0n;
  const unchanged = async () => {
    const saved = await f.store.load();
    assert.equal(saved.serverKey, undefined);
    assert.equal(saved.sequences.size, 0);
    assert.deepEqual(agent.serverKey(), TEST_PUBLIC_KEY);
    assert.equal(f.replies.length, 0);
  };
  await t.step("signed by another key, with a huge sequence id", async () => {
    await agent.handleFrame(
      (await f.keyRotate(attacker, { sequence: huge }, attacker.privateKey)).frame,
    );
    assert.equal(agent.rejections.get("bad_signature"), 1);
    await unchanged();
  });
  await t.step("signed by the current key, but the proof is not the new key's", async () => {
    // The proof is made by the attacker's key for the genuine new key.
    const forged = await f.keyRotate({ ...attacker, publicKey: next.publicKey }, {
      sequence: huge,
    });
    await agent.handleFrame(forged.frame);
    assert.equal(agent.rejections.get("bad_key_proof"), 1);
    await unchanged();
  });
  await t.step("addressed to another device", async () => {
    const other = await f.keyRotate(next, {
      sequence: huge,
      target: new Uint8Array(16).fill(1),
    });
    await agent.handleFrame(other.frame);
    assert.equal(agent.rejections.get("wrong_target"), 1);
    await unchanged();
  });
  await t.step("the genuine one still works afterwards", async () => {
    await agent.handleFrame((await f.keyRotate(next)).frame);
    assert.equal(f.replies[0]!.message.status, ACTIVATE_SUCCESS);
    assert.deepEqual(agent.serverKey(), next.publicKey);
  });
});

Deno.test("a KEY_ROTATE keeps a staged update, and the file store keeps the keys across a restart", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f = await fixture(new FileDeviceStore(dir));
    const agent = await f.make();
    const digest = await sha256(FIRMWARE);
    const init = await f.initiate({ url: "https://u.example/a", digest });
    await agent.handleFrame(init.frame);
    const next = await keyPair();
    await agent.handleFrame((await f.keyRotate(next, { overlap: 5_000n })).frame);
    assert.equal(agent.status().staged, toHex(init.message.token));
    const saved = await readState(dir);
    assert.equal(saved?.serverKey, toHex(next.publicKey));
    assert.equal(saved?.oldServerKey, toHex(TEST_PUBLIC_KEY));
    assert.equal(saved?.oldKeyUntil, NOW + 5_000);
    const text = JSON.parse(await Deno.readTextFile(join(dir, "state.json")));
    assert.equal(text.serverKey, toHex(next.publicKey));
    const restarted = await f.make();
    assert.deepEqual(restarted.serverKey(), next.publicKey);
    // Within the overlap the old key's ACTIVATE still lands after the restart.
    await restarted.handleFrame((await f.activate(init.message.token, {}, TEST_PRIVATE_KEY)).frame);
    assert.equal(f.replies.at(-1)!.message.status, ACTIVATE_SUCCESS);
    assert.equal(restarted.status().current, toHex(digest));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the saved state keeps the server keys and refuses malformed ones", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  const key = "ab".repeat(32);
  const old = "cd".repeat(32);
  try {
    await t.step("an overlap until the first new-key frame survives as null", async () => {
      const store = new FileDeviceStore(dir);
      await store.save({
        sequences: new Map(),
        tokens: [],
        serverKey: key,
        oldServerKey: old,
        oldKeyUntil: null,
      });
      assert.equal(JSON.parse(await Deno.readTextFile(path)).oldKeyUntil, null);
      const saved = await readState(dir);
      assert.deepEqual(
        [saved?.serverKey, saved?.oldServerKey, saved?.oldKeyUntil],
        [key, old, null],
      );
    });
    await t.step("an overlap that is over is not written at all", async () => {
      await new FileDeviceStore(dir).save({
        sequences: new Map(),
        tokens: [],
        serverKey: key,
        oldServerKey: old,
      });
      assert.equal("oldKeyUntil" in JSON.parse(await Deno.readTextFile(path)), false);
      assert.equal((await readState(dir))?.oldKeyUntil, undefined);
    });
    for (
      const [name, patch] of [
        ["a short key", { serverKey: "ab" }],
        ["a key that is not hex", { serverKey: "zz".repeat(32) }],
        ["an old key of the wrong length", { oldServerKey: "ab".repeat(31) }],
        ["an overlap end that is not a number", { oldKeyUntil: "soon" }],
      ] as const
    ) {
      await t.step(`${name} is refused`, async () => {
        const json = {
          format: 1,
          sequences: {},
          tokens: [],
          serverKey: key,
          oldServerKey: old,
          ...patch,
        };
        await Deno.writeTextFile(path, JSON.stringify(json));
        await assert.rejects(() => readState(dir), /Invalid device state/);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
