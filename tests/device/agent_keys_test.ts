import assert from "node:assert/strict";
import {
  type ActivateMessage,
  decodeMessage,
  defaultEd25519,
  type DeviceKeyMessage,
  encodeMessage,
  type InitiateMessage,
  newToken,
  randomPrivateKey,
  type ReleaseKeysMessage,
  type ResponseMessage,
  signKeySet,
  signManifest,
  signMessage,
  type SrupMessage,
  toHex,
  UPDATE_REFUSED_UNSIGNED,
  UPDATE_SUCCESS,
  uuidToBytes,
  verifyDeviceKey,
  verifyMessage,
} from "../../srup/mod.ts";
import {
  createDeviceAgent,
  type DeviceAgentOptions,
  MemoryDeviceStore,
  MemoryKeyStore,
} from "../../device/mod.ts";
import { TEST_PRIVATE_KEY, TEST_PUBLIC_KEY } from "../_helpers.ts";
import { fetchReturning, sha256 } from "./_fixture.ts";

const ed = await defaultEd25519();
const FIRMWARE = new TextEncoder().encode("firmware\n".repeat(100));
const NOW = Date.UTC(2026, 11, 2, 12);

/** An agent in memory that records every frame it publishes, decoded. */
async function keyAgent(options: Partial<DeviceAgentOptions> = {}) {
  const deviceId = crypto.randomUUID();
  const privateKey = randomPrivateKey();
  const publicKey = await ed.getPublicKey(privateKey);
  const store = new MemoryDeviceStore();
  const keys = new MemoryKeyStore();
  const sent: SrupMessage[] = [];
  /** For each DEVICE_KEY, whether its key was already kept in the key store when it went out. */
  const keptBeforeSent: boolean[] = [];
  let serverSequence = 0n;
  const served = fetchReturning(() => new Response(FIRMWARE));
  const make = () =>
    createDeviceAgent({
      deviceId,
      privateKey,
      serverKey: TEST_PUBLIC_KEY,
      store,
      keys,
      fetch: served.fetch,
      clock: { now: () => NOW, setTimeout, clearTimeout },
      ...options,
      async publish(_topic, frame) {
        const message = decodeMessage(frame);
        if (message.type === "device_key") {
          const kept = await keys.loadNext();
          keptBeforeSent.push(
            kept !== undefined && toHex(await ed.getPublicKey(kept)) === toHex(message.key),
          );
        }
        sent.push(message);
      },
    });
  async function server<T extends SrupMessage>(fields: Omit<T, "signature" | "version">) {
    const message = await signMessage(
      { version: 2, sequence: ++serverSequence, signature: new Uint8Array(), ...fields } as T,
      TEST_PRIVATE_KEY,
    );
    return { message, frame: encodeMessage(message) };
  }
  const initiate = (extra: Partial<InitiateMessage> = {}) =>
    server<InitiateMessage>({
      type: "initiate",
      target: uuidToBytes(deviceId),
      token: newToken(),
      url: "https://updates.example/fw.bin",
      digest: new Uint8Array(32),
      ...extra,
    });
  const ack = (token: Uint8Array, sequence?: bigint) =>
    server<ActivateMessage>({
      type: "activate",
      token,
      ...(sequence === undefined ? {} : { sequence }),
    });
  const releaseKeys = (keySet: Uint8Array) =>
    server<ReleaseKeysMessage>({
      type: "release_keys",
      target: uuidToBytes(deviceId),
      token: newToken(),
      keySet,
    });
  const responses = () => sent.filter((m): m is ResponseMessage => m.type === "response");
  const proposals = () => sent.filter((m): m is DeviceKeyMessage => m.type === "device_key");
  return {
    deviceId,
    publicKey,
    store,
    keys,
    sent,
    keptBeforeSent,
    make,
    initiate,
    ack,
    releaseKeys,
    responses,
    proposals,
  };
}

Deno.test("rotateKey(): the agent proposes a new key signed by the old one, switches only on the server's ACTIVATE", async (t) => {
  const a = await keyAgent();
  const agent = await a.make();
  let seed!: Uint8Array;
  let newPublic!: Uint8Array;

  await t.step(
    "the proposal is durable first, then sent, signed by the old key with a proof",
    async () => {
      seed = await agent.rotateKey();
      newPublic = await ed.getPublicKey(seed);
      assert.deepEqual(await a.keys.loadNext(), seed);
      const [proposal] = a.proposals();
      assert.ok(proposal);
      assert.deepEqual(proposal.key, newPublic);
      assert.equal(await verifyDeviceKey(proposal, a.publicKey), null);
      // The key is kept before the frame leaves: a crash right after sending cannot lose it.
      assert.deepEqual(a.keptBeforeSent, [true]);
    },
  );
  await t.step(
    "until acknowledged, RESPONSEs stay signed by the old key (and the proposal goes again)",
    async () => {
      await agent.handleFrame(
        (await a.initiate({ url: "http://[::1", digest: new Uint8Array(32) })).frame,
      );
      const reply = a.responses().at(-1)!;
      assert.ok(await verifyMessage(reply, a.publicKey));
      assert.equal(a.proposals().length, 2, "re-proposed before answering");
    },
  );
  await t.step("an ACTIVATE with a token the agent never proposed changes no key", async () => {
    await agent.handleFrame((await a.ack(newToken())).frame);
    assert.deepEqual(agent.pendingKey, seed);
    assert.equal(agent.rejections.get("unknown_token"), 1);
  });
  await t.step("a forged acknowledgment (not the server's key) is dropped", async () => {
    const forged = await signMessage<ActivateMessage>({
      type: "activate",
      version: 2,
      sequence: 1n << 40n,
      token: a.proposals()[0]!.token,
      signature: new Uint8Array(),
    }, randomPrivateKey());
    await agent.handleFrame(encodeMessage(forged));
    assert.equal(agent.rejections.get("bad_signature"), 1);
    assert.deepEqual(agent.pendingKey, seed);
  });
  await t.step(
    "the server's ACTIVATE of the proposal's token: key committed, RESPONSEs signed by the new key",
    async () => {
      await agent.handleFrame((await a.ack(a.proposals()[0]!.token)).frame);
      assert.equal(agent.pendingKey, undefined);
      assert.deepEqual(a.keys.current, seed);
      assert.equal(await a.keys.loadNext(), undefined);
      await agent.handleFrame((await a.initiate({ url: "http://[::1" })).frame);
      const reply = a.responses().at(-1)!;
      assert.ok(await verifyMessage(reply, newPublic), "signed by the new key");
      assert.ok(!await verifyMessage(reply, a.publicKey), "not by the old one");
    },
  );
});

Deno.test("an agent restarted with a proposal pending sends it again, and a replayed acknowledgment is refused", async () => {
  const a = await keyAgent();
  const first = await a.make();
  const seed = await first.rotateKey();
  // A crash: the proposal was kept, its acknowledgment never arrived.
  const restarted = await a.make();
  assert.deepEqual(restarted.pendingKey, seed);
  await restarted.proposeKey();
  const [, again] = a.proposals();
  assert.ok(again);
  assert.deepEqual(again.key, await ed.getPublicKey(seed));
  assert.notDeepEqual(again.sequence, a.proposals()[0]!.sequence);
  // An acknowledgment with a sequence id already seen is a replay: no switch.
  await restarted.handleFrame((await a.initiate({ url: "http://[::1" })).frame);
  await restarted.handleFrame((await a.ack(again.token, 1n)).frame);
  assert.equal(restarted.rejections.get("replay"), 1);
  assert.deepEqual(restarted.pendingKey, seed);
});

Deno.test("RELEASE_KEYS: an agent trusts a release key only through a key set signed by the keys it trusts", async (t) => {
  const root = randomPrivateKey();
  const rootPub = await ed.getPublicKey(root);
  const next = randomPrivateKey();
  const nextPub = await ed.getPublicKey(next);
  const madeUp = randomPrivateKey();
  const madeUpPub = await ed.getPublicKey(madeUp);
  const a = await keyAgent({ releaseKeys: [rootPub] });
  const agent = await a.make();
  const digest = await sha256(FIRMWARE);
  const manifestBy = (key: Uint8Array, securityVersion = 1) =>
    signManifest({
      digest,
      size: FIRMWARE.length,
      name: "fw",
      version: `1.${securityVersion}`,
      securityVersion,
      hardware: [],
    }, key);
  async function install(key: Uint8Array, securityVersion?: number): Promise<number> {
    const { frame } = await a.initiate({
      version: 3,
      digest,
      manifest: await manifestBy(key, securityVersion),
      notAfter: BigInt(NOW + 60_000),
    });
    await agent.handleFrame(frame);
    return a.responses().at(-1)!.status;
  }

  await t.step(
    "before any key set, a manifest signed by the next key is refused (0xFB)",
    async () => {
      assert.equal(await install(next), UPDATE_REFUSED_UNSIGNED);
    },
  );
  await t.step(
    "a key set the server made up (signed by its own key) is refused and counted",
    async () => {
      const fake = await signKeySet({ version: 2, keys: [madeUpPub] }, [madeUp]);
      await agent.handleFrame((await a.releaseKeys(fake)).frame);
      assert.equal(agent.rejections.get("key_set_refused"), 1);
      assert.equal((await a.store.load()).releaseKeySet, undefined);
      assert.equal(await install(madeUp), UPDATE_REFUSED_UNSIGNED);
    },
  );
  const v2 = await signKeySet({ version: 2, keys: [nextPub] }, [root, next]);
  await t.step("the key set signed by the root key and the next: learned, persisted", async () => {
    await agent.handleFrame((await a.releaseKeys(v2)).frame);
    assert.deepEqual((await a.store.load()).releaseKeySet, { version: 2, keys: [toHex(nextPub)] });
    assert.equal(await install(next, 2), UPDATE_SUCCESS);
  });
  await t.step("the root key is revoked by it: its releases are refused now (0xFB)", async () => {
    assert.equal(await install(root, 3), UPDATE_REFUSED_UNSIGNED);
  });
  await t.step(
    "the same key set again is stale: skipped, not counted; a restart keeps the set",
    async () => {
      await agent.handleFrame((await a.releaseKeys(v2)).frame);
      assert.equal(agent.rejections.get("key_set_refused"), 1);
      assert.deepEqual((await a.store.load()).releaseKeySet?.version, 2);
      const restarted = await a.make();
      const { frame } = await a.initiate({
        version: 3,
        digest,
        manifest: await manifestBy(next, 3),
        notAfter: BigInt(NOW + 60_000),
      });
      await restarted.handleFrame(frame);
      assert.equal(a.responses().at(-1)!.status, UPDATE_SUCCESS, "the learned key still verifies");
    },
  );
  await t.step("a key set addressed to another device is dropped", async () => {
    const other = await signMessage<ReleaseKeysMessage>({
      type: "release_keys",
      version: 2,
      sequence: 1n << 50n,
      target: uuidToBytes(crypto.randomUUID()),
      token: newToken(),
      keySet: v2,
      signature: new Uint8Array(),
    }, TEST_PRIVATE_KEY);
    await agent.handleFrame(encodeMessage(other));
    assert.equal(agent.rejections.get("wrong_target"), 1);
  });
});

Deno.test("an agent provisioned without release keys drops key sets: nothing to follow from", async () => {
  const a = await keyAgent();
  const agent = await a.make();
  const k = randomPrivateKey();
  const doc = await signKeySet({ version: 2, keys: [await ed.getPublicKey(k)] }, [k]);
  await agent.handleFrame((await a.releaseKeys(doc)).frame);
  assert.equal(agent.rejections.get("key_set_refused"), 1);
  assert.equal((await a.store.load()).releaseKeySet, undefined);
});
