import assert from "node:assert/strict";
import {
  decodeManifest,
  defaultEd25519,
  encodeManifestBody,
  fromHex,
  ManifestError,
  MAX_MANIFEST_BYTES,
  nativeEd25519,
  nobleEd25519,
  type ReleaseManifest,
  signManifest,
  toHex,
  verifyManifest,
} from "../../srup/mod.ts";
import { seededRandom, TEST_PRIVATE_KEY, TEST_PUBLIC_KEY } from "../_helpers.ts";

const RELEASE: ReleaseManifest = {
  digest: Uint8Array.fromHex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
  size: 123_456,
  name: "fw",
  version: "1.4.2",
  securityVersion: 7,
  hardware: ["rpi4", "rpi5"],
  expiresAt: Date.UTC(2030, 0, 1),
};

// Signed with the RFC 8032 TEST 1 key: [SRUP-7.1] layout, [SRUP-7.2] domain-separated signature.
const GOLDEN_MANIFEST = "01" + // format
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" + // digest
  "000000000001e240" + // size 123456
  "00000007" + // security version 7
  "0000000070dbd880" + // expires 2030-01-01T00:00:00Z, in seconds
  "026677" + "05312e342e32" + // name "fw", version "1.4.2"
  "02" + "0472706934" + "0472706935" + // hardware ["rpi4", "rpi5"]
  "84b9a4a7eedb82f51ceb44b3adaa6cd64062f7597f6a9243090014bfbc01d105" + // Ed25519 signature
  "2c4a61ecc9bedae01c09ec853d720db3589851837c27343eaf8c622955351100";

Deno.test("a signed manifest decodes to what was signed and verifies with both backends", async () => {
  const bytes = await signManifest(RELEASE, TEST_PRIVATE_KEY);
  const manifest = decodeManifest(bytes);
  assert.deepEqual(
    { ...manifest, signature: undefined, bytes: undefined },
    { ...RELEASE, signature: undefined, bytes: undefined },
  );
  assert.deepEqual(manifest.bytes, bytes);
  for (const backend of [nativeEd25519, nobleEd25519]) {
    assert.equal(await verifyManifest(manifest, [TEST_PUBLIC_KEY], backend), true, backend.name);
  }
});

Deno.test("golden manifest decodes, verifies and re-signs byte for byte", async () => {
  const manifest = decodeManifest(fromHex(GOLDEN_MANIFEST));
  assert.equal(manifest.name, "fw");
  assert.equal(manifest.securityVersion, 7);
  assert.equal(manifest.expiresAt, Date.UTC(2030, 0, 1));
  assert.equal(await verifyManifest(manifest, [TEST_PUBLIC_KEY]), true);
  // Ed25519 is deterministic: the same key and body give the same bytes every time.
  assert.equal(toHex(await signManifest(RELEASE, TEST_PRIVATE_KEY)), GOLDEN_MANIFEST);
});

Deno.test("verifyManifest() is false for another key, a flipped bit, or no key at all", async () => {
  const bytes = await signManifest(RELEASE, TEST_PRIVATE_KEY);
  const other = await (await defaultEd25519()).getPublicKey(new Uint8Array(32).fill(9));
  assert.equal(await verifyManifest(decodeManifest(bytes), [other]), false);
  assert.equal(await verifyManifest(decodeManifest(bytes), []), false);
  assert.equal(await verifyManifest(decodeManifest(bytes), [other, TEST_PUBLIC_KEY]), true);
  let decoded = 0;
  for (let bit = 0; bit < bytes.length * 8; bit++) {
    const flipped = bytes.slice();
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    let manifest;
    try {
      manifest = decodeManifest(flipped);
    } catch (error) {
      assert.ok(error instanceof ManifestError);
      continue;
    }
    decoded++;
    assert.equal(await verifyManifest(manifest, [TEST_PUBLIC_KEY]), false, `bit ${bit}`);
  }
  assert.ok(decoded > bytes.length * 4, `only ${decoded} flips decoded`);
});

Deno.test("a manifest signature is not a SRUP frame signature: the domain prefix differs", async () => {
  const body = encodeManifestBody(RELEASE);
  const ed25519 = await defaultEd25519();
  // A signature over the bare body (what a server key signing arbitrary bytes would give).
  const bare = await ed25519.sign(body, TEST_PRIVATE_KEY);
  const forged = new Uint8Array([...body, ...bare]);
  assert.equal(await verifyManifest(decodeManifest(forged), [TEST_PUBLIC_KEY]), false);
});

Deno.test("decodeManifest() rejects malformed bytes with a stable code", async (t) => {
  const bytes = await signManifest(
    { ...RELEASE, hardware: [], expiresAt: undefined },
    TEST_PRIVATE_KEY,
  );
  const code = (input: Uint8Array) => {
    try {
      decodeManifest(input);
    } catch (error) {
      assert.ok(error instanceof ManifestError, String(error));
      return error.code;
    }
    return "decoded";
  };
  await t.step("every truncation", () => {
    for (let length = 0; length < bytes.length; length++) {
      assert.equal(code(bytes.subarray(0, length)), "truncated", `length ${length}`);
    }
  });
  await t.step("trailing bytes, unknown format, too large", () => {
    assert.equal(code(new Uint8Array([...bytes, 0])), "trailing_bytes");
    const format = bytes.slice();
    // Format 2 is a signed rollback release ([SRUP-7.6]); 3 is the first unknown one.
    format[0] = 3;
    assert.equal(code(format), "unknown_format");
    assert.equal(code(new Uint8Array(MAX_MANIFEST_BYTES + 1)), "too_large");
  });
  await t.step("empty, overlong or unprintable text; a size beyond 2^53 - 1", () => {
    const empty = bytes.slice();
    empty[53] = 0;
    assert.equal(code(empty), "invalid_field");
    const long = bytes.slice();
    long[53] = 65;
    assert.equal(code(long), "invalid_field");
    const space = bytes.slice();
    space[54] = 0x20;
    assert.equal(code(space), "invalid_field");
    const huge = bytes.slice();
    huge[33] = 0xff;
    assert.equal(code(huge), "invalid_field");
  });
  await t.step("100,000 random mutations never throw anything but ManifestError", () => {
    const random = seededRandom(15);
    for (let i = 0; i < 100_000; i++) {
      const out = bytes.slice(0, Math.floor(random() * (bytes.length + 1)));
      for (let n = 1 + Math.floor(random() * 4); n > 0; n--) {
        out[Math.floor(random() * out.length)] = Math.floor(random() * 256);
      }
      code(out);
    }
  });
});

Deno.test("encodeManifestBody() refuses what it cannot represent", () => {
  const bad: [Partial<ReleaseManifest>, RegExp][] = [
    [{ name: "" }, /name "" must be 1 to 64/],
    [{ name: "a b" }, /name "a b"/],
    [{ version: "v".repeat(65) }, /version/],
    [{ hardware: Array(9).fill("x") }, /at most 8/],
    [{ digest: new Uint8Array(31) }, /digest must be 32 bytes/],
    [{ size: -1 }, /size -1/],
    [{ securityVersion: 2 ** 32 }, /security version 4294967296 is not a u32/],
    [{ expiresAt: 1500 }, /expiry 1500 is not a whole second/],
  ];
  for (const [patch, message] of bad) {
    assert.throws(() => encodeManifestBody({ ...RELEASE, ...patch }), message);
  }
});
