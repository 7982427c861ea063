import assert from "node:assert/strict";
import {
  getDevice,
  GroupCommitWriter,
  listEvents,
  listKeyRotations,
  openDatabase,
  registerDevice,
} from "../../db/mod.ts";
import { DeviceKeys } from "../../orchestrator/device_keys.ts";
import { StoredSequenceTracker } from "../../orchestrator/sequence_tracker.ts";
import {
  defaultEd25519,
  type DeviceKeyMessage,
  keyFingerprint,
  newToken,
  randomPrivateKey,
  signDeviceKey,
  signMessage,
  toBase64,
} from "../../srup/mod.ts";

const ed = await defaultEd25519();

Deno.test("DeviceKeys: the server records a rotation, then refuses replay, stale keys and downgrade", async (t) => {
  const database = await openDatabase({ memory: true });
  const writer = new GroupCommitWriter(database.db, { onError: () => {} });
  const tracker = new StoredSequenceTracker(database.db, writer);
  const cache = new Map<string, string>();
  const announced: string[] = [];
  const keys = new DeviceKeys({
    db: database.db,
    tracker,
    current: (id) =>
      Promise.resolve(cache.has(id) ? Uint8Array.fromBase64(cache.get(id)!) : undefined),
    adopted: (id, key) => void cache.set(id, key),
    announce: (event) => void announced.push(`${event.id}:${event.type}`),
  });
  const id = crypto.randomUUID();
  const k1 = randomPrivateKey();
  const k2 = randomPrivateKey();
  const k3 = randomPrivateKey();
  const pub = async (k: Uint8Array) => await ed.getPublicKey(k);
  await registerDevice(database.db, { id, publicKey: toBase64(await pub(k1)) });
  cache.set(id, toBase64(await pub(k1)));
  const propose = (oldPrivateKey: Uint8Array, newPrivateKey: Uint8Array, sequence: bigint) =>
    signDeviceKey({ oldPrivateKey, newPrivateKey, sequence, token: newToken() });
  try {
    await t.step(
      "a forged DEVICE_KEY (another key signed it) moves no counter and changes no key",
      async () => {
        const forged = await propose(k3, k2, 1n << 60n);
        assert.deepEqual(await keys.handle(id, forged), {
          acknowledge: false,
          reason: "bad_signature",
          fields: undefined,
        });
        assert.equal(await tracker.last(id), null);
      },
    );
    await t.step("a new key that did not sign its proof: bad_key_proof", async () => {
      const genuine = await propose(k1, k2, 5n);
      const swapped = await signMessage<DeviceKeyMessage>({ ...genuine, key: await pub(k3) }, k1);
      const verdict = await keys.handle(id, swapped);
      assert.equal(verdict.acknowledge ? "ack" : verdict.reason, "bad_key_proof");
    });
    await t.step("a rotation to its own key: key_reused", async () => {
      const verdict = await keys.handle(id, await propose(k1, k1, 6n));
      assert.equal(verdict.acknowledge ? "ack" : verdict.reason, "key_reused");
    });
    await t.step(
      "the genuine rotation: recorded with its audit record, in force at once",
      async () => {
        assert.deepEqual(await keys.handle(id, await propose(k1, k2, 10n)), { acknowledge: true });
        const row = await getDevice(database.db, id);
        assert.equal(row!.publicKey, toBase64(await pub(k2)));
        assert.equal(row!.lastSequence, 10n);
        assert.equal(cache.get(id), toBase64(await pub(k2)));
        const [rotation] = await listKeyRotations(database.db, id);
        assert.equal(rotation!.oldFingerprint, keyFingerprint(await pub(k1)));
        assert.equal(rotation!.newFingerprint, keyFingerprint(await pub(k2)));
        assert.equal(rotation!.sequence, 10n);
        const events = await listEvents(database.db, { deviceId: id });
        const audit = events.find((e) => e.type === "device.key_rotated");
        assert.deepEqual(audit?.data, {
          oldFingerprint: keyFingerprint(await pub(k1)),
          newFingerprint: keyFingerprint(await pub(k2)),
          sequence: "10",
        });
        assert.equal(await tracker.last(id), 10n);
        // The committed event, with its id, for the live stream.
        assert.deepEqual(announced, [`${audit!.id}:device.key_rotated`]);
      },
    );
    await t.step("the old key can rotate no more: bad_signature", async () => {
      const verdict = await keys.handle(id, await propose(k1, k3, 20n));
      assert.equal(verdict.acknowledge ? "ack" : verdict.reason, "bad_signature");
    });
    await t.step(
      "the proposal sent again by the old key (the acknowledgment was lost): acknowledged, nothing moves",
      async () => {
        assert.deepEqual(await keys.handle(id, await propose(k1, k2, 21n)), { acknowledge: true });
        assert.equal(await tracker.last(id), 10n);
        assert.equal((await listKeyRotations(database.db, id)).length, 1);
      },
    );
    await t.step("a replay (sequence id not above the last): refused", async () => {
      const verdict = await keys.handle(id, await propose(k2, k3, 10n));
      assert.equal(verdict.acknowledge ? "ack" : verdict.reason, "replay");
      assert.equal(cache.get(id), toBase64(await pub(k2)));
    });
    await t.step("a downgrade, back to a key the device used before: key_reused", async () => {
      const verdict = await keys.handle(id, await propose(k2, k1, 30n));
      assert.equal(verdict.acknowledge ? "ack" : verdict.reason, "key_reused");
      assert.equal(cache.get(id), toBase64(await pub(k2)));
      assert.equal(await tracker.last(id), 10n, "a refused frame moves no counter");
    });
    await t.step("a second rotation chains on: k2 to k3", async () => {
      assert.deepEqual(await keys.handle(id, await propose(k2, k3, 31n)), { acknowledge: true });
      assert.equal((await listKeyRotations(database.db, id)).length, 2);
    });
    await t.step("an unknown device: unknown_device", async () => {
      const verdict = await keys.handle(crypto.randomUUID(), await propose(k1, k2, 1n));
      assert.equal(verdict.acknowledge ? "ack" : verdict.reason, "unknown_device");
    });
  } finally {
    await writer.close();
    await database.close();
  }
});
