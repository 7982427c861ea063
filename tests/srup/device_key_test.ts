import assert from "node:assert/strict";
import {
  decodeMessage,
  defaultEd25519,
  type DeviceKeyMessage,
  encodeMessage,
  newToken,
  randomPrivateKey,
  type ReleaseKeysMessage,
  signDeviceKey,
  signMessage,
  SrupDecodeError,
  uuidToBytes,
  verifyDeviceKey,
} from "../../srup/mod.ts";

async function keys() {
  const ed = await defaultEd25519();
  const oldPrivate = randomPrivateKey();
  const newPrivate = randomPrivateKey();
  return {
    oldPrivate,
    newPrivate,
    oldPublic: await ed.getPublicKey(oldPrivate),
    newPublic: await ed.getPublicKey(newPrivate),
  };
}

Deno.test("DEVICE_KEY round-trips through the codec: header, then signature, token, key, proof", async () => {
  const k = await keys();
  const message = await signDeviceKey({
    oldPrivateKey: k.oldPrivate,
    newPrivateKey: k.newPrivate,
    sequence: 0x0102030405060708n,
    token: newToken(),
  });
  const frame = encodeMessage(message);
  assert.deepEqual([...frame.subarray(0, 10)], [2, 6, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(frame.length, 10 + 66 + 18 + 34 + 66);
  assert.deepEqual(decodeMessage(frame), message);
  assert.deepEqual(message.key, k.newPublic);
});

Deno.test("RELEASE_KEYS round-trips through the codec: signature, target, token, key set", () => {
  const message: ReleaseKeysMessage = {
    type: "release_keys",
    version: 2,
    sequence: 9n,
    signature: new Uint8Array(64).fill(1),
    target: uuidToBytes(crypto.randomUUID()),
    token: newToken(),
    keySet: new Uint8Array(2048).fill(7),
  };
  const frame = encodeMessage(message);
  assert.equal(frame[1], 0x07);
  assert.deepEqual(decodeMessage(frame), message);
  const tooLarge = { ...message, keySet: new Uint8Array(2049) };
  assert.throws(() => encodeMessage(tooLarge), RangeError);
});

Deno.test("DEVICE_KEY and RELEASE_KEYS exist in version 2 only: unknown_type in 1 and 3", async () => {
  const k = await keys();
  const message = await signDeviceKey({
    oldPrivateKey: k.oldPrivate,
    newPrivateKey: k.newPrivate,
    sequence: 1n,
    token: newToken(),
  });
  assert.throws(() => encodeMessage({ ...message, version: 3 }), /DEVICE_KEY needs version 2/);
  for (const type of [6, 7]) {
    for (const version of [1, 3]) {
      const frame = new Uint8Array([version, type, ...new Uint8Array(20)]);
      assert.throws(
        () => decodeMessage(frame),
        (error) =>
          error instanceof SrupDecodeError && error.code === "unknown_type" && error.offset === 1,
      );
    }
  }
});

Deno.test("verifyDeviceKey() needs the old key's frame signature and the new key's proof", async (t) => {
  const k = await keys();
  const message = await signDeviceKey({
    oldPrivateKey: k.oldPrivate,
    newPrivateKey: k.newPrivate,
    sequence: 5n,
    token: newToken(),
  });
  await t.step("genuine: both hold", async () => {
    assert.equal(await verifyDeviceKey(message, k.oldPublic), null);
  });
  await t.step("checked against any other key: bad_signature", async () => {
    assert.equal(await verifyDeviceKey(message, k.newPublic), "bad_signature");
  });
  await t.step("a key nobody holds, its proof made by another key: bad_key_proof", async () => {
    // The old key signs a frame naming a key whose private half it does not have.
    const forged = await signDeviceKey({
      oldPrivateKey: k.oldPrivate,
      newPrivateKey: randomPrivateKey(),
      sequence: 6n,
      token: newToken(),
    });
    const swapped: DeviceKeyMessage = { ...forged, key: k.newPublic };
    const resigned = await signMessage(swapped, k.oldPrivate);
    assert.equal(await verifyDeviceKey(resigned, k.oldPublic), "bad_key_proof");
  });
  await t.step(
    "the proof binds the sequence id: a proof moved to another frame fails",
    async () => {
      const moved = await signMessage({ ...message, sequence: 99n }, k.oldPrivate);
      assert.equal(await verifyDeviceKey(moved, k.oldPublic), "bad_key_proof");
    },
  );
  await t.step("a malformed key or proof is a failed verify, never a throw", async () => {
    const short = await signMessage({ ...message, key: new Uint8Array(3) }, k.oldPrivate);
    assert.equal(await verifyDeviceKey(short, k.oldPublic), "bad_key_proof");
  });
});
