import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeMessage,
  encodeMessage,
  encodeSigningInput,
  fromHex,
  type InitiateMessage,
  MAX_MANIFEST_BYTES,
  MAX_SEQUENCE,
  SrupDecodeError,
  type SrupDecodeErrorCode,
  type SrupMessage,
  STATUS_NAMES,
  toHex,
} from "../../srup/mod.ts";
import { ascii } from "../_helpers.ts";

// The seed's Table II example, encoded by hand: version, type, then five u16-prefixed fields.
const TABLE_II_HEX = [
  "01",
  "01",
  "0008" + toHex(ascii("SIG_DATA")),
  "0006" + toHex(ascii("TARGET")),
  "0005" + toHex(ascii("TOKEN")),
  "0017" + toHex(ascii("https://www.example.com")),
  "0006" + toHex(ascii("DIGEST")),
].join("");

const TABLE_II: SrupMessage = {
  type: "initiate",
  version: 1,
  signature: ascii("SIG_DATA"),
  target: ascii("TARGET"),
  token: ascii("TOKEN"),
  url: "https://www.example.com",
  digest: ascii("DIGEST"),
};

function decodeError(bytes: Uint8Array): SrupDecodeError {
  try {
    decodeMessage(bytes);
  } catch (error) {
    assert.ok(error instanceof SrupDecodeError, `expected SrupDecodeError, got ${error}`);
    return error;
  }
  assert.fail(`frame ${toHex(bytes)} decoded`);
}

function assertRejects(bytes: Uint8Array, code: SrupDecodeErrorCode, offset: number) {
  const error = decodeError(bytes);
  assert.equal(error.code, code, error.message);
  assert.equal(error.offset, offset, error.message);
  assert.match(error.message, /^Cannot decode frame: /);
}

Deno.test("encodeMessage() writes the seed's Table II example as a 60-byte frame", () => {
  const frame = encodeMessage(TABLE_II);
  assert.equal(frame.length, 60);
  assert.equal(toHex(frame), TABLE_II_HEX);
});

Deno.test("decodeMessage() reads the seed's Table II example", () => {
  assert.deepEqual(decodeMessage(fromHex(TABLE_II_HEX)), TABLE_II);
});

Deno.test("encodeSigningInput() leaves out the signature field and nothing else", () => {
  const input = encodeSigningInput(TABLE_II);
  assert.equal(toHex(input), TABLE_II_HEX.replace("0008" + toHex(ascii("SIG_DATA")), ""));
});

Deno.test("version 2 frames carry the sequence id big-endian after the type byte", () => {
  const message: SrupMessage = {
    type: "activate",
    version: 2,
    sequence: 0x0102030405060708n,
    signature: ascii("S"),
    token: ascii("T"),
  };
  const frame = encodeMessage(message);
  assert.equal(toHex(frame), "0203" + "0102030405060708" + "000153" + "000154");
  assert.deepEqual(decodeMessage(frame), message);
});

Deno.test("RESPONSE ends with the raw status byte", () => {
  const message: SrupMessage = {
    type: "response",
    version: 1,
    signature: ascii("S"),
    token: ascii("T"),
    status: 0xfe,
  };
  assert.equal(toHex(encodeMessage(message)), "0102" + "000153" + "000154" + "fe");
});

Deno.test("a ROLLBACK is version 2 only: signature, target, token, digest after the sequence id", async (t) => {
  const rollback: SrupMessage = {
    type: "rollback",
    version: 2,
    sequence: 3n,
    signature: ascii("S"),
    target: ascii("G"),
    token: ascii("T"),
    digest: ascii("D"),
  };
  const hex = "0204" + "0000000000000003" + "000153" + "000147" + "000154" + "000144";
  await t.step("its layout", () => {
    assert.equal(toHex(encodeMessage(rollback)), hex);
    assert.deepEqual(decodeMessage(fromHex(hex)), rollback);
  });
  await t.step("in version 1 it is an unknown type, whatever follows", () => {
    assertRejects(fromHex("0104" + "000153" + "000147" + "000154" + "000144"), "unknown_type", 1);
    assert.match(decodeError(fromHex("0104")).message, /type 0x04 is unknown in version 1/);
    assert.throws(
      () => encodeMessage({ ...rollback, version: 1, sequence: undefined }),
      /ROLLBACK needs version 2/,
    );
  });
  await t.step("its fields are checked against their caps before anything is taken", () => {
    const head = "0204" + "0000000000000003" + "000153";
    assertRejects(fromHex(head + "0041"), "field_too_large", 13);
    assertRejects(fromHex(head + "000147" + "000154" + "0041"), "field_too_large", 19);
    assertRejects(fromHex(head + "000147" + "000154" + "ffff"), "field_too_large", 19);
    assertRejects(fromHex(head + "000147" + "000154" + "0002" + "44"), "truncated", 21);
    assertRejects(fromHex(head + "000147" + "000154"), "truncated", 19);
    assertRejects(fromHex(head + "000147" + "000154" + "0000"), "empty_field", 19);
    assertRejects(fromHex(hex + "00"), "trailing_bytes", 22);
  });
});

Deno.test("decodeMessage() rejects malformed frames with a stable code and offset", async (t) => {
  const table = fromHex(TABLE_II_HEX);
  await t.step("empty and truncated frames", () => {
    assertRejects(new Uint8Array(0), "truncated", 0);
    assertRejects(fromHex("01"), "truncated", 1);
    assertRejects(fromHex("0203000000"), "truncated", 2);
    for (let length = 1; length < table.length; length++) {
      assert.equal(decodeError(table.subarray(0, length)).code, "truncated");
    }
  });
  await t.step("unknown version and type", () => {
    assertRejects(fromHex("0401"), "unknown_version", 0);
    assertRejects(fromHex("0001"), "unknown_version", 0);
    assertRejects(fromHex("0104"), "unknown_type", 1);
    assertRejects(fromHex("0100"), "unknown_type", 1);
  });
  await t.step("trailing bytes", () => {
    const frame = new Uint8Array(table.length + 1);
    frame.set(table);
    assertRejects(frame, "trailing_bytes", 60);
  });
  await t.step("empty fields", () => {
    assertRejects(fromHex("01030000"), "empty_field", 2);
    assertRejects(fromHex("0103000153" + "0000"), "empty_field", 5);
  });
  await t.step("fields over their caps, before any allocation", () => {
    // Signature claims 513 bytes in a 6-byte frame: the cap is checked before the length.
    assertRejects(fromHex("01030201ffff"), "field_too_large", 2);
    assertRejects(fromHex("0101000153" + "0041"), "field_too_large", 5);
    assertRejects(fromHex("0103000153" + "0041"), "field_too_large", 5);
    const url = "0801";
    assertRejects(fromHex("0101000153000154000154" + url), "field_too_large", 11);
    assertRejects(fromHex("0101000153000154000154000155" + "0041"), "field_too_large", 14);
  });
  await t.step("frames over 4096 bytes", () => {
    assertRejects(new Uint8Array(4097), "frame_too_large", 4096);
  });
  await t.step("URLs that are not UTF-8", () => {
    assertRejects(fromHex("0101000153000154000154" + "0002c328" + "000155"), "invalid_utf8", 11);
  });
  await t.step("unknown status bytes", () => {
    assertRejects(fromHex("0102000153000154" + "42"), "unknown_status", 8);
  });
});

Deno.test("encodeMessage() throws on misuse rather than writing a bad frame", () => {
  assert.throws(() => encodeMessage({ ...TABLE_II, token: new Uint8Array(0) }), RangeError);
  assert.throws(() => encodeMessage({ ...TABLE_II, target: new Uint8Array(65) }), RangeError);
  assert.throws(() => encodeMessage({ ...TABLE_II, url: "x".repeat(2049) }), RangeError);
  assert.throws(() => encodeMessage({ ...TABLE_II, version: 2 }), TypeError);
  assert.throws(() => encodeMessage({ ...TABLE_II, sequence: 1n }), TypeError);
  assert.throws(
    () => encodeMessage({ ...TABLE_II, version: 2, sequence: MAX_SEQUENCE + 1n }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeMessage({
        type: "response",
        version: 1,
        signature: ascii("S"),
        token: ascii("T"),
        status: 256,
      }),
    RangeError,
  );
});

Deno.test("version 3 INITIATE adds the manifest field and a u64 not-after after the digest", () => {
  const v3: SrupMessage = {
    ...TABLE_II,
    version: 3,
    sequence: 5n,
    manifest: ascii("MANIFEST"),
    notAfter: 0x0102030405060708n,
  };
  const frame = encodeMessage(v3);
  const v2 = encodeMessage({ ...TABLE_II, version: 2, sequence: 5n });
  assert.equal(frame[0], 3);
  assert.equal(toHex(frame.subarray(1, v2.length)), toHex(v2.subarray(1)));
  assert.equal(
    toHex(frame.subarray(v2.length)),
    "0008" + toHex(ascii("MANIFEST")) + "0102030405060708",
  );
  assert.deepEqual(decodeMessage(frame), v3);
  // RESPONSE and ACTIVATE in version 3 are version 2's layout with byte 0 set to 3.
  const activate: SrupMessage = {
    type: "activate",
    version: 3,
    sequence: 5n,
    signature: ascii("S"),
    token: ascii("T"),
  };
  assert.equal(
    toHex(encodeMessage(activate).subarray(1)),
    toHex(encodeMessage({ ...activate, version: 2 }).subarray(1)),
  );
});

Deno.test("version 3 INITIATE: the manifest's length is checked against its cap", () => {
  const v3 = encodeMessage({
    ...TABLE_II,
    version: 3,
    sequence: 5n,
    manifest: new Uint8Array(MAX_MANIFEST_BYTES),
    notAfter: 1n,
  });
  const at = v3.length - 8 - MAX_MANIFEST_BYTES - 2;
  const over = v3.slice();
  over[at] = (MAX_MANIFEST_BYTES + 1) >> 8;
  over[at + 1] = (MAX_MANIFEST_BYTES + 1) & 0xff;
  assertRejects(over, "field_too_large", at);
  assertRejects(v3.subarray(0, v3.length - 1), "truncated", v3.length - 8);
  assert.throws(
    () =>
      encodeMessage({
        ...TABLE_II,
        version: 3,
        sequence: 5n,
        manifest: new Uint8Array(MAX_MANIFEST_BYTES + 1),
        notAfter: 1n,
      }),
    RangeError,
  );
  assert.throws(
    () => encodeMessage({ ...TABLE_II, version: 3, sequence: 5n, notAfter: 1n }),
    TypeError,
  );
  assert.throws(
    () => encodeMessage({ ...TABLE_II, version: 3, sequence: 5n, manifest: ascii("M") }),
    TypeError,
  );
  assert.throws(
    () =>
      encodeMessage({ ...TABLE_II, version: 2, sequence: 5n, manifest: ascii("M"), notAfter: 1n }),
    TypeError,
  );
});

const bytes = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max });
const header = {
  version: fc.constantFrom(1 as const, 2 as const, 3 as const),
  sequence: fc.bigInt({ min: 0n, max: MAX_SEQUENCE }),
  signature: bytes(512),
  token: bytes(64),
};
const arbitraryMessage: fc.Arbitrary<SrupMessage> = fc.oneof(
  fc.record({
    type: fc.constant("initiate" as const),
    ...header,
    target: bytes(64),
    url: fc.string({ unit: "grapheme", minLength: 1, maxLength: 500 }),
    digest: bytes(64),
    manifest: bytes(256),
    notAfter: fc.bigInt({ min: 0n, max: MAX_SEQUENCE }),
  }),
  fc.record({
    type: fc.constant("response" as const),
    ...header,
    status: fc.constantFrom(...STATUS_NAMES.keys()),
  }),
  fc.record({ type: fc.constant("activate" as const), ...header }),
  fc.record({
    type: fc.constant("rollback" as const),
    ...header,
    version: fc.constant(2 as const),
    target: bytes(64),
    digest: bytes(64),
  }),
  fc.record({
    type: fc.constant("key_rotate" as const),
    ...header,
    version: fc.constant(2 as const),
    target: bytes(64),
    key: bytes(64),
    proof: bytes(512),
    overlap: fc.bigInt({ min: 0n, max: MAX_SEQUENCE }),
  }),
).map((generated) => {
  // fast-check builds null-prototype records; messages from decodeMessage() are plain objects.
  const message = { ...generated };
  if (message.version === 1) delete (message as Partial<SrupMessage>).sequence;
  if (message.type === "initiate" && message.version !== 3) {
    delete (message as Partial<InitiateMessage>).manifest;
    delete (message as Partial<InitiateMessage>).notAfter;
  }
  return message;
});

Deno.test("decodeMessage(encodeMessage(m)) returns m for any valid message", () => {
  fc.assert(
    fc.property(arbitraryMessage, (message) => {
      assert.deepEqual(decodeMessage(encodeMessage(message)), message);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("encodeMessage(decodeMessage(f)) returns f for any frame that decodes", () => {
  fc.assert(
    fc.property(arbitraryMessage, (message) => {
      const frame = encodeMessage(message);
      assert.deepEqual(encodeMessage(decodeMessage(frame)), frame);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("encodeMessage() writes a lone surrogate in a URL as U+FFFD, as TextEncoder does", () => {
  const message: SrupMessage = { ...TABLE_II, url: "https://x/\ud800a\udc00" } as SrupMessage;
  const decoded = decodeMessage(encodeMessage(message));
  assert.equal((decoded as { url: string }).url, "https://x/\ufffda\ufffd");
});

Deno.test("decoded fields stay intact while later frames are decoded and encoded", () => {
  const first = decodeMessage(fromHex(TABLE_II_HEX));
  const input = fromHex(TABLE_II_HEX);
  for (let i = 0; i < 5000; i++) {
    decodeMessage(input);
    encodeMessage({ ...TABLE_II, token: new Uint8Array(64).fill(i & 0xff) });
  }
  input.fill(0);
  assert.deepEqual(first, TABLE_II);
});
