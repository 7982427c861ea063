import assert from "node:assert/strict";
import {
  decodeMessage,
  defaultEd25519,
  encodeMessage,
  fromHex,
  keyFingerprint,
  type KeyRotateMessage,
  newToken,
  randomPrivateKey,
  signKeyProof,
  signMessage,
  SrupDecodeError,
  toHex,
  uuidToBytes,
  verifyKeyProof,
  verifyMessage,
} from "../../srup/mod.ts";
import { ascii } from "../_helpers.ts";

const DEVICE = "6f1c2f4e-8a3b-4c7d-9e2f-0a1b2c3d4e5f";
const SERVER_ID = "0123456789abcdef";

async function keyPair(): Promise<{ privateKey: Uint8Array; publicKey: Uint8Array }> {
  const privateKey = randomPrivateKey();
  return { privateKey, publicKey: await (await defaultEd25519()).getPublicKey(privateKey) };
}

/** A KEY_ROTATE to `next`, proven by `next` for `serverId` and signed by `current`. */
async function keyRotate(
  current: Uint8Array,
  next: { privateKey: Uint8Array; publicKey: Uint8Array },
  serverId = SERVER_ID,
): Promise<KeyRotateMessage> {
  const target = uuidToBytes(DEVICE);
  const token = newToken();
  const proof = await signKeyProof(
    { key: next.publicKey, serverId, target, token },
    next.privateKey,
  );
  return await signMessage({
    type: "key_rotate",
    version: 2,
    sequence: 5n,
    signature: new Uint8Array(),
    target,
    token,
    key: next.publicKey,
    proof,
    overlap: 60_000n,
  }, current);
}

function decodeError(hex: string): SrupDecodeError {
  try {
    decodeMessage(fromHex(hex));
  } catch (error) {
    if (error instanceof SrupDecodeError) return error;
    throw error;
  }
  throw new Error("decoded");
}

Deno.test("a KEY_ROTATE is version 2 only: signature, target, token, key, proof, then a u64 overlap", async (t) => {
  const message: KeyRotateMessage = {
    type: "key_rotate",
    version: 2,
    sequence: 3n,
    signature: ascii("S"),
    target: ascii("G"),
    token: ascii("T"),
    key: ascii("K"),
    proof: ascii("P"),
    overlap: 258n,
  };
  const hex = "0205" + "0000000000000003" + "000153" + "000147" + "000154" + "00014b" + "000150" +
    "0000000000000102";
  await t.step("its layout", () => {
    assert.equal(toHex(encodeMessage(message)), hex);
    assert.deepEqual(decodeMessage(fromHex(hex)), message);
  });
  await t.step("in versions 1 and 3 it is an unknown type, so old agents drop it", () => {
    for (const version of ["01", "03"]) {
      const error = decodeError(version + "05");
      assert.equal(error.code, "unknown_type");
      assert.equal(error.offset, 1);
      assert.match(error.message, /type 0x05 is unknown in version/);
    }
    assert.throws(
      () => encodeMessage({ ...message, version: 1, sequence: undefined }),
      /KEY_ROTATE needs version 2/,
    );
  });
  await t.step("its fields are checked against their caps, then the overlap and the end", () => {
    const head = "0205" + "0000000000000003" + "000153" + "000147" + "000154";
    assert.equal(decodeError(head + "0041").code, "field_too_large");
    assert.equal(decodeError(head + "0041").offset, 19);
    assert.equal(decodeError(head + "00014b" + "0201").code, "field_too_large");
    assert.equal(decodeError(head + "00014b" + "000150" + "0000").code, "truncated");
    assert.equal(decodeError(head + "0000").code, "empty_field");
    assert.equal(decodeError(hex + "00").code, "trailing_bytes");
  });
});

Deno.test("a signed KEY_ROTATE round-trips and verifies under the current key and the new key's proof", async () => {
  const current = await keyPair();
  const next = await keyPair();
  const message = await keyRotate(current.privateKey, next);
  const decoded = decodeMessage(encodeMessage(message));
  assert.equal(decoded.type, "key_rotate");
  assert.deepEqual(decoded, message);
  assert.equal(await verifyMessage(decoded, current.publicKey), true);
  assert.equal(await verifyKeyProof(decoded as KeyRotateMessage, SERVER_ID), true);
});

Deno.test("verifyKeyProof() rejects a forged inner self-signature", async (t) => {
  const current = await keyPair();
  const next = await keyPair();
  const message = await keyRotate(current.privateKey, next);
  await t.step("a proof made by another key (the current one) for the new key", async () => {
    const forged = await signKeyProof(
      { key: next.publicKey, serverId: SERVER_ID, target: message.target, token: message.token },
      current.privateKey,
    );
    // The outer signature is genuine: only the proof is wrong.
    const resigned = await signMessage({ ...message, proof: forged }, current.privateKey);
    assert.equal(await verifyMessage(resigned, current.publicKey), true);
    assert.equal(await verifyKeyProof(resigned, SERVER_ID), false);
  });
  await t.step("a proof for another server id, device or token", async () => {
    assert.equal(await verifyKeyProof(message, "fedcba9876543210"), false);
    assert.equal(
      await verifyKeyProof({ ...message, target: uuidToBytes(crypto.randomUUID()) }, SERVER_ID),
      false,
    );
    assert.equal(await verifyKeyProof({ ...message, token: newToken() }, SERVER_ID), false);
  });
  await t.step(
    "a key swapped for another one, and malformed bytes, without an exception",
    async () => {
      const other = await keyPair();
      assert.equal(await verifyKeyProof({ ...message, key: other.publicKey }, SERVER_ID), false);
      assert.equal(await verifyKeyProof({ ...message, key: new Uint8Array(31) }, SERVER_ID), false);
      assert.equal(
        await verifyKeyProof({ ...message, proof: new Uint8Array(63) }, SERVER_ID),
        false,
      );
      const flipped = message.proof.slice();
      flipped[10]! ^= 1;
      assert.equal(await verifyKeyProof({ ...message, proof: flipped }, SERVER_ID), false);
    },
  );
});

Deno.test("a KEY_ROTATE signed by a key other than the current one fails verification", async () => {
  const current = await keyPair();
  const next = await keyPair();
  const attacker = await keyPair();
  // Signed by the attacker, proven by the new key: the proof alone never makes a frame genuine.
  const message = await keyRotate(attacker.privateKey, next);
  assert.equal(await verifyKeyProof(message, SERVER_ID), true);
  assert.equal(await verifyMessage(message, current.publicKey), false);
  // And the new key itself does not sign the frame it introduces.
  const selfSigned = await keyRotate(next.privateKey, next);
  assert.equal(await verifyMessage(selfSigned, current.publicKey), false);
});

Deno.test("keyFingerprint() is the first 16 hex characters of SHA-256, as the default server id", async () => {
  const { publicKey } = await keyPair();
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", publicKey as Uint8Array<ArrayBuffer>),
  );
  assert.equal(keyFingerprint(publicKey), toHex(digest).slice(0, 16));
  assert.throws(() => keyFingerprint(new Uint8Array(31)), RangeError);
});
