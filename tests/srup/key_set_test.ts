import assert from "node:assert/strict";
import {
  advanceKeySet,
  decodeKeySet,
  defaultEd25519,
  followKeySets,
  type KeySet,
  KeySetError,
  type KeySetErrorCode,
  randomPrivateKey,
  signKeySet,
} from "../../srup/mod.ts";

async function keyPair() {
  const privateKey = randomPrivateKey();
  return { privateKey, publicKey: await (await defaultEd25519()).getPublicKey(privateKey) };
}

function rejects(bytes: Uint8Array, code: KeySetErrorCode) {
  assert.throws(
    () => decodeKeySet(bytes),
    (error) => error instanceof KeySetError && error.code === code,
    code,
  );
}

Deno.test("a key set document round-trips: format, version, keys, then each signer's key and signature", async () => {
  const a = await keyPair();
  const b = await keyPair();
  const bytes = await signKeySet({ version: 2, keys: [b.publicKey] }, [a.privateKey, b.privateKey]);
  assert.equal(bytes.length, 1 + 4 + 1 + 32 + 1 + 2 * 96);
  assert.deepEqual([...bytes.subarray(0, 6)], [1, 0, 0, 0, 2, 1]);
  const document = decodeKeySet(bytes);
  assert.equal(document.version, 2);
  assert.deepEqual(document.keys, [b.publicKey]);
  assert.deepEqual(document.signatures.map((s) => s.key), [a.publicKey, b.publicKey]);
});

Deno.test("decodeKeySet() rejects malformed documents with a code, before reading past the end", async () => {
  const a = await keyPair();
  const good = await signKeySet({ version: 3, keys: [a.publicKey] }, [a.privateKey]);
  rejects(new Uint8Array(2049), "too_large");
  rejects(good.subarray(0, 5), "truncated");
  rejects(good.subarray(0, good.length - 1), "truncated");
  rejects(new Uint8Array([...good, 0]), "trailing_bytes");
  rejects(Uint8Array.from(good, (byte, i) => (i === 0 ? 2 : byte)), "unknown_format");
  rejects(Uint8Array.from(good, (byte, i) => (i === 4 ? 1 : byte)), "invalid_field");
  rejects(Uint8Array.from(good, (byte, i) => (i === 5 ? 0 : byte)), "invalid_field");
  rejects(Uint8Array.from(good, (byte, i) => (i === 5 ? 9 : byte)), "invalid_field");
  rejects(Uint8Array.from(good, (byte, i) => (i === 38 ? 0 : byte)), "invalid_field");
  const twice = new Uint8Array([1, 0, 0, 0, 2, 2, ...a.publicKey, ...a.publicKey, 0]);
  rejects(twice, "invalid_field");
  await assert.rejects(signKeySet({ version: 1, keys: [a.publicKey] }, [a.privateKey]), RangeError);
});

Deno.test("decodeKeySet() throws only KeySetError on 20,000 random and mutated inputs", async () => {
  const a = await keyPair();
  const good = await signKeySet({ version: 2, keys: [a.publicKey] }, [a.privateKey]);
  for (let i = 0; i < 20_000; i++) {
    const bytes = i % 2 === 0
      ? crypto.getRandomValues(new Uint8Array(i % 400))
      : Uint8Array.from(good, (byte) => (Math.random() < 0.02 ? byte ^ 0xff : byte));
    try {
      decodeKeySet(bytes);
    } catch (error) {
      assert.ok(error instanceof KeySetError, String(error));
    }
  }
});

Deno.test("advanceKeySet() follows only a document one version up, signed by a trusted key and by each key it adds", async (t) => {
  const root = await keyPair();
  const next = await keyPair();
  const stranger = await keyPair();
  const trusted: KeySet = { version: 1, keys: [root.publicKey] };

  await t.step("signed by the current key and the new one: the new set", async () => {
    const bytes = await signKeySet({ version: 2, keys: [next.publicKey] }, [
      root.privateKey,
      next.privateKey,
    ]);
    const step = await advanceKeySet(trusted, bytes);
    assert.deepEqual(step, { ok: true, set: { version: 2, keys: [next.publicKey] } });
  });
  await t.step("signed by a key nobody trusts (the server's own, say): refused", async () => {
    const bytes = await signKeySet({ version: 2, keys: [stranger.publicKey] }, [
      stranger.privateKey,
    ]);
    assert.deepEqual(await advanceKeySet(trusted, bytes), {
      ok: false,
      reason: "not_signed_by_trusted_key",
    });
  });
  await t.step("a new key that did not sign: refused, no proof anyone holds it", async () => {
    const bytes = await signKeySet({ version: 2, keys: [next.publicKey] }, [root.privateKey]);
    assert.deepEqual(await advanceKeySet(trusted, bytes), {
      ok: false,
      reason: "new_key_unproven",
    });
  });
  await t.step("a kept key needs no new proof; a version skipped is a gap", async () => {
    const kept = await signKeySet({ version: 2, keys: [root.publicKey] }, [root.privateKey]);
    assert.equal((await advanceKeySet(trusted, kept)).ok, true);
    const gap = await signKeySet({ version: 3, keys: [root.publicKey] }, [root.privateKey]);
    assert.deepEqual(await advanceKeySet(trusted, gap), { ok: false, reason: "version_gap" });
  });
  await t.step(
    "an old document again: stale (a rotation is never undone by a replay)",
    async () => {
      const old = await signKeySet({ version: 2, keys: [root.publicKey] }, [root.privateKey]);
      const at3 = { version: 3, keys: [next.publicKey] };
      assert.deepEqual(await advanceKeySet(at3, old), { ok: false, reason: "stale" });
    },
  );
  await t.step("a flipped bit in a signature: not signed by a trusted key", async () => {
    const bytes = await signKeySet({ version: 2, keys: [next.publicKey] }, [
      root.privateKey,
      next.privateKey,
    ]);
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 1;
    assert.equal((await advanceKeySet(trusted, bytes)).ok, false);
  });
  await t.step("garbage: malformed, never a throw", async () => {
    assert.deepEqual(await advanceKeySet(trusted, new Uint8Array(3)), {
      ok: false,
      reason: "malformed: truncated",
    });
  });
});

Deno.test("followKeySets() walks a chain, skips what is already applied, stops at the first break", async () => {
  const k1 = await keyPair();
  const k2 = await keyPair();
  const k3 = await keyPair();
  const v2 = await signKeySet({ version: 2, keys: [k2.publicKey] }, [k1.privateKey, k2.privateKey]);
  const v3 = await signKeySet({ version: 3, keys: [k3.publicKey] }, [k2.privateKey, k3.privateKey]);
  const root = { version: 1, keys: [k1.publicKey] };
  assert.deepEqual(await followKeySets(root, [v2, v3]), {
    ok: true,
    set: { version: 3, keys: [k3.publicKey] },
  });
  assert.deepEqual(await followKeySets({ version: 2, keys: [k2.publicKey] }, [v2, v3]), {
    ok: true,
    set: { version: 3, keys: [k3.publicKey] },
  });
  // k1 was revoked at version 2: it cannot sign version 3.
  const forged = await signKeySet({ version: 3, keys: [k1.publicKey] }, [k1.privateKey]);
  assert.deepEqual(await followKeySets(root, [v2, forged]), {
    ok: false,
    reason: "not_signed_by_trusted_key",
    index: 1,
  });
  assert.deepEqual(await followKeySets(root, [v3]), { ok: false, reason: "version_gap", index: 0 });
});
