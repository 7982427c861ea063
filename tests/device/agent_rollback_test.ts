import assert from "node:assert/strict";
import {
  ACTIVATE_FAIL,
  ACTIVATE_SUCCESS,
  encodeMessage,
  randomPrivateKey,
  ROLLBACK_UNAVAILABLE,
  signMessage,
  toHex,
  UPDATE_REFUSED_ROLLBACK,
  uuidToBytes,
} from "../../srup/mod.ts";
import { type AgentState, MemoryDeviceStore } from "../../device/mod.ts";
import { agentFixture, fetchReturning, sha256 } from "./_fixture.ts";

const ONE = new TextEncoder().encode("firmware one\n");
const TWO = new TextEncoder().encode("firmware two\n");

/** An agent that ran ONE, then TWO: current TWO, previous ONE. */
async function updatedTwice(store = new MemoryDeviceStore()) {
  const f = await agentFixture({
    store,
    ...fetchReturning((url) => new Response(url.endsWith("one") ? ONE : TWO)),
  });
  const agent = await f.make();
  for (const name of ["one", "two"]) {
    const digest = await sha256(name === "one" ? ONE : TWO);
    const init = await f.initiate({ url: `https://updates.example/${name}`, digest });
    await agent.handleFrame(init.frame);
    await agent.handleFrame((await f.activate(init.message.token)).frame);
  }
  f.replies.length = 0;
  return { f, agent, store, one: await sha256(ONE), two: await sha256(TWO) };
}

Deno.test("an agent rolls back to its previous version on a verified ROLLBACK and answers 0x10", async (t) => {
  const { f, agent, store, one, two } = await updatedTwice();
  const rollback = await f.rollback(one);

  await t.step("current and previous swap, persisted like an activation", async () => {
    await agent.handleFrame(rollback.frame);
    assert.equal(f.replies.length, 1);
    assert.equal(f.replies[0]!.message.status, ACTIVATE_SUCCESS);
    assert.deepEqual(f.replies[0]!.message.token, rollback.message.token);
    assert.equal(f.replies[0]!.message.version, 2);
    assert.deepEqual(agent.status(), {
      id: f.deviceId,
      current: toHex(one),
      previous: toHex(two),
      staged: null,
    });
    assert.deepEqual(store.artifact("current"), ONE);
    assert.deepEqual(store.artifact("previous"), TWO);
    const saved = await store.load();
    assert.equal(saved.current?.digest, toHex(one));
    assert.equal(saved.sequences.values().next().value, rollback.message.sequence);
  });
  await t.step(
    "a retry with a new token finds ONE running: 0x10 again, nothing swapped",
    async () => {
      await agent.handleFrame((await f.rollback(one)).frame);
      assert.equal(f.replies[1]!.message.status, ACTIVATE_SUCCESS);
      assert.equal(agent.status().current, toHex(one));
      assert.equal(agent.status().previous, toHex(two));
    },
  );
  await t.step("a restarted agent keeps the rolled-back state", async () => {
    const restarted = await f.make();
    assert.equal(restarted.status().current, toHex(one));
    assert.equal(restarted.status().previous, toHex(two));
  });
  await t.step("a ROLLBACK naming TWO, now the previous version, swaps back", async () => {
    await agent.handleFrame((await f.rollback(two)).frame);
    assert.equal(f.replies[2]!.message.status, ACTIVATE_SUCCESS);
    assert.equal(agent.status().current, toHex(two));
    assert.deepEqual(store.artifact("current"), TWO);
  });
});

Deno.test("an agent answers 0x1E when it holds no previous version, or not the one named", async (t) => {
  await t.step("a device with nothing installed", async () => {
    const f = await agentFixture();
    const agent = await f.make();
    await agent.handleFrame((await f.rollback(await sha256(ONE))).frame);
    assert.equal(f.replies[0]!.message.status, ROLLBACK_UNAVAILABLE);
    assert.equal(agent.status().current, null);
  });
  await t.step("a device with one version and no previous", async () => {
    const f = await agentFixture(fetchReturning(() => new Response(ONE)));
    const agent = await f.make();
    const digest = await sha256(ONE);
    const init = await f.initiate({ url: "https://updates.example/one", digest });
    await agent.handleFrame(init.frame);
    await agent.handleFrame((await f.activate(init.message.token)).frame);
    await agent.handleFrame((await f.rollback(new Uint8Array(32).fill(9))).frame);
    assert.equal(f.replies.at(-1)!.message.status, ROLLBACK_UNAVAILABLE);
    assert.deepEqual(agent.status(), {
      id: f.deviceId,
      current: toHex(digest),
      previous: null,
      staged: null,
    });
  });
  await t.step("a previous version other than the one the server names", async () => {
    const { f, agent, two } = await updatedTwice();
    await agent.handleFrame((await f.rollback(new Uint8Array(32).fill(9))).frame);
    assert.equal(f.replies[0]!.message.status, ROLLBACK_UNAVAILABLE);
    assert.equal(agent.status().current, toHex(two));
  });
});

Deno.test("an agent answers 0x1F and changes nothing when the switch cannot be saved", async () => {
  const store = new MemoryDeviceStore();
  const { f, agent, two } = await updatedTwice(store);
  store.activate = (_state: AgentState) => Promise.reject(new Error("disk full"));
  await agent.handleFrame((await f.rollback(await sha256(ONE))).frame);
  assert.equal(f.replies[0]!.message.status, ACTIVATE_FAIL);
  assert.equal(agent.status().current, toHex(two));
  assert.deepEqual(store.artifact("current"), TWO);
});

Deno.test("an agent drops forged, misaddressed, replayed and reused ROLLBACKs without moving its replay counter", async (t) => {
  const { f, agent, store, one, two } = await updatedTwice();
  const floor = (await store.load()).sequences.values().next().value!;
  const huge = 0xffff_ffff_ffff_ffffn;

  await t.step("a forged ROLLBACK with the largest sequence id", async () => {
    await agent.handleFrame(
      (await f.rollback(one, { sequence: huge }, randomPrivateKey())).frame,
    );
    assert.equal(agent.rejections.get("bad_signature"), 1);
    assert.equal((await store.load()).sequences.values().next().value, floor);
  });
  await t.step("a genuine ROLLBACK for another device", async () => {
    const target = uuidToBytes(crypto.randomUUID());
    await agent.handleFrame((await f.rollback(one, { target, sequence: huge })).frame);
    assert.equal(agent.rejections.get("wrong_target"), 1);
    assert.equal((await store.load()).sequences.values().next().value, floor);
  });
  await t.step("a sequence id not above the last", async () => {
    await agent.handleFrame((await f.rollback(one, { sequence: floor })).frame);
    assert.equal(agent.rejections.get("replay"), 1);
  });
  assert.equal(f.replies.length, 0);
  assert.equal(agent.status().current, toHex(two));

  const genuine = await f.rollback(one);
  await agent.handleFrame(genuine.frame);
  assert.equal(f.replies[0]!.message.status, ACTIVATE_SUCCESS);
  await t.step("the same ROLLBACK redelivered: dropped as a replay, no second swap", async () => {
    await agent.handleFrame(genuine.frame);
    assert.equal(agent.rejections.get("token_reused"), 1);
    assert.equal(agent.status().current, toHex(one));
    assert.equal(f.replies.length, 1);
  });
});

Deno.test("an agent drops a message type it does not know without moving its replay counter", async (t) => {
  const { f, agent, store, one } = await updatedTwice();
  const floor = (await store.load()).sequences.values().next().value!;
  // A frame of a type this agent does not know (0x7F; 0x05 is KEY_ROTATE), with the largest sequence id.
  const known = encodeMessage(
    await signMessage({
      type: "activate",
      version: 2,
      sequence: 0xffff_ffff_ffff_ffffn,
      token: new Uint8Array(16).fill(1),
      signature: new Uint8Array(),
    }, randomPrivateKey()),
  );
  const unknown = known.slice();
  unknown[1] = 0x7f;

  await t.step("type 0x7F: unknown_type, nothing recorded", async () => {
    await agent.handleFrame(unknown);
    assert.equal(agent.rejections.get("unknown_type"), 1);
    assert.equal((await store.load()).sequences.values().next().value, floor);
  });
  await t.step("a ROLLBACK in version 1, which has none: unknown_type", async () => {
    const v2 = (await f.rollback(one, { sequence: 0xffff_ffff_ffff_fffen })).frame;
    // Version 1 has no sequence id: drop the 8 bytes after the type byte.
    const v1 = new Uint8Array([1, v2[1]!, ...v2.subarray(10)]);
    await agent.handleFrame(v1);
    assert.equal(agent.rejections.get("unknown_type"), 2);
    assert.equal((await store.load()).sequences.values().next().value, floor);
  });
  await t.step("the server's next genuine frame is obeyed", async () => {
    await agent.handleFrame((await f.rollback(one)).frame);
    assert.equal(f.replies.at(-1)!.message.status, ACTIVATE_SUCCESS);
    assert.equal(agent.rejections.get("replay"), 0);
  });
});

Deno.test("an agent refuses a ROLLBACK to a lower security version with 0xFA, and allows an equal one", async (t) => {
  const current = { slot: 1, token: "01", digest: "aa".repeat(32), size: 3 };
  const previous = { slot: 0, token: "02", digest: "bb".repeat(32), size: 3 };
  for (
    const [name, versions, status] of [
      ["7 below 8: refused, nothing swapped", [8, 7], UPDATE_REFUSED_ROLLBACK],
      ["8 and 8: swapped", [8, 8], ACTIVATE_SUCCESS],
      ["no manifests (both 0): swapped", [undefined, undefined], ACTIVATE_SUCCESS],
    ] as const
  ) {
    await t.step(name, async () => {
      const store = new MemoryDeviceStore();
      await store.save({
        sequences: new Map(),
        tokens: [],
        current: { ...current, securityVersion: versions[0] },
        previous: { ...previous, securityVersion: versions[1] },
      });
      const f = await agentFixture({ store });
      const agent = await f.make();
      await agent.handleFrame((await f.rollback(Uint8Array.fromHex(previous.digest))).frame);
      assert.equal(f.replies[0]!.message.status, status);
      const expected = status === ACTIVATE_SUCCESS ? previous.digest : current.digest;
      assert.equal(agent.status().current, expected);
    });
  }
});
