/** Decoding of untrusted frames. Throws nothing but SrupDecodeError. */
import {
  FIELD_LENGTH_BYTES,
  MAX_DIGEST_BYTES,
  MAX_FRAME_BYTES,
  MAX_KEY_BYTES,
  MAX_KEY_SET_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_SIGNATURE_BYTES,
  MAX_TARGET_BYTES,
  MAX_TOKEN_BYTES,
  MAX_URL_BYTES,
  SEQUENCE_BYTES,
  TYPE_ACTIVATE,
  TYPE_DEVICE_KEY,
  TYPE_INITIATE,
  TYPE_KEY_ROTATE,
  TYPE_RELEASE_KEYS,
  TYPE_RESPONSE,
  TYPE_ROLLBACK,
  VERSION_1,
  VERSION_2,
  VERSION_3,
} from "./constants.ts";
import { SrupDecodeError } from "./errors.ts";
import { isKnownStatus } from "./status.ts";
import type { SrupMessage } from "./types.ts";
import { allocBytes } from "./alloc.ts";

/** [SRUP-2.2] Types that need a sequence id: in versions 1 and 3 they are `unknown_type`. */
const VERSION_2_ONLY: ReadonlySet<number> = new Set([
  TYPE_ROLLBACK,
  TYPE_KEY_ROTATE,
  TYPE_DEVICE_KEY,
  TYPE_RELEASE_KEYS,
]);

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes a frame into a message; the signature is not checked here. */
export function decodeMessage(bytes: Uint8Array): SrupMessage {
  if (bytes.length > MAX_FRAME_BYTES) {
    throw new SrupDecodeError(
      "frame_too_large",
      MAX_FRAME_BYTES,
      `frame of ${bytes.length} bytes exceeds ${MAX_FRAME_BYTES}`,
    );
  }
  // One copy of the whole frame, so fields stay valid when the transport reuses its buffer;
  // fields are views into it, which is far cheaper than one small allocation each.
  const copy = allocBytes(bytes.length);
  copy.set(bytes);
  const reader = new Reader(copy);
  // [SRUP-2.1]
  const versionByte = reader.byte("version");
  if (versionByte !== VERSION_1 && versionByte !== VERSION_2 && versionByte !== VERSION_3) {
    throw new SrupDecodeError("unknown_version", 0, `version 0x${hexByte(versionByte)} is unknown`);
  }
  const version = versionByte as 1 | 2 | 3;
  // [SRUP-2.2]
  const typeByte = reader.byte("type");
  // ROLLBACK, KEY_ROTATE, DEVICE_KEY and RELEASE_KEYS must always carry a sequence id.
  const versionTwoOnly = VERSION_2_ONLY.has(typeByte);
  const known = typeByte === TYPE_INITIATE || typeByte === TYPE_RESPONSE ||
    typeByte === TYPE_ACTIVATE || (versionTwoOnly && version === 2);
  if (!known) {
    const where = versionTwoOnly ? ` in version ${version}` : "";
    throw new SrupDecodeError(
      "unknown_type",
      1,
      `message type 0x${hexByte(typeByte)} is unknown${where}`,
    );
  }
  const sequence = version === 1 ? undefined : reader.u64("sequence");

  // [SRUP-2.4]
  const signature = reader.field("signature", MAX_SIGNATURE_BYTES);
  let message: SrupMessage;
  if (typeByte === TYPE_INITIATE) {
    const target = reader.field("target", MAX_TARGET_BYTES);
    const token = reader.field("token", MAX_TOKEN_BYTES);
    const urlOffset = reader.offset;
    const urlBytes = reader.field("url", MAX_URL_BYTES);
    const url = decodeUtf8(urlBytes, urlOffset);
    const digest = reader.field("digest", MAX_DIGEST_BYTES);
    message = { type: "initiate", version, signature, target, token, url, digest };
    if (version === 3) {
      // [SRUP-2.4] The manifest is opaque here: the device parses and verifies it ([SRUP-7]).
      message.manifest = reader.field("manifest", MAX_MANIFEST_BYTES);
      message.notAfter = reader.u64("not-after");
    }
  } else if (typeByte === TYPE_RESPONSE) {
    const token = reader.field("token", MAX_TOKEN_BYTES);
    const statusOffset = reader.offset;
    const status = reader.byte("status");
    if (!isKnownStatus(status)) {
      throw new SrupDecodeError(
        "unknown_status",
        statusOffset,
        `status 0x${hexByte(status)} is unknown`,
      );
    }
    message = { type: "response", version, signature, token, status };
  } else if (typeByte === TYPE_ROLLBACK) {
    // [SRUP-9]
    const target = reader.field("target", MAX_TARGET_BYTES);
    const token = reader.field("token", MAX_TOKEN_BYTES);
    const digest = reader.field("digest", MAX_DIGEST_BYTES);
    message = { type: "rollback", version, signature, target, token, digest };
  } else if (typeByte === TYPE_DEVICE_KEY) {
    // [SRUP-11.1]
    const token = reader.field("token", MAX_TOKEN_BYTES);
    const key = reader.field("key", MAX_KEY_BYTES);
    const proof = reader.field("proof", MAX_SIGNATURE_BYTES);
    message = { type: "device_key", version, signature, token, key, proof };
  } else if (typeByte === TYPE_RELEASE_KEYS) {
    // [SRUP-12.2] The key set is opaque here: the device decodes and verifies it ([SRUP-12.3]).
    const target = reader.field("target", MAX_TARGET_BYTES);
    const token = reader.field("token", MAX_TOKEN_BYTES);
    const keySet = reader.field("key set", MAX_KEY_SET_BYTES);
    message = { type: "release_keys", version, signature, target, token, keySet };
  } else if (typeByte === TYPE_KEY_ROTATE) {
    // [SRUP-10]
    const target = reader.field("target", MAX_TARGET_BYTES);
    const token = reader.field("token", MAX_TOKEN_BYTES);
    const key = reader.field("key", MAX_KEY_BYTES);
    const proof = reader.field("proof", MAX_SIGNATURE_BYTES);
    const overlap = reader.u64("overlap");
    message = { type: "key_rotate", version, signature, target, token, key, proof, overlap };
  } else {
    const token = reader.field("token", MAX_TOKEN_BYTES);
    message = { type: "activate", version, signature, token };
  }
  if (reader.offset !== bytes.length) {
    throw new SrupDecodeError(
      "trailing_bytes",
      reader.offset,
      `${bytes.length - reader.offset} trailing bytes after the message`,
    );
  }
  if (sequence !== undefined) message.sequence = sequence;
  return message;
}

class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #need(count: number, what: string): void {
    if (this.offset + count > this.#bytes.length) {
      throw new SrupDecodeError(
        "truncated",
        this.offset,
        `frame ends inside ${what} (needs ${count} bytes, has ${this.#bytes.length - this.offset})`,
      );
    }
  }

  byte(what: string): number {
    this.#need(1, what);
    return this.#bytes[this.offset++]!;
  }

  u64(what: string): bigint {
    this.#need(SEQUENCE_BYTES, what);
    const value = this.#view.getBigUint64(this.offset);
    this.offset += SEQUENCE_BYTES;
    return value;
  }

  /** [SRUP-2.3] A u16 length, checked against `max` and the frame before the bytes are taken. */
  field(name: string, max: number): Uint8Array {
    const start = this.offset;
    this.#need(FIELD_LENGTH_BYTES, `the length of field "${name}"`);
    const length = this.#view.getUint16(start);
    if (length === 0) {
      throw new SrupDecodeError("empty_field", start, `field "${name}" is empty`);
    }
    if (length > max) {
      throw new SrupDecodeError(
        "field_too_large",
        start,
        `field "${name}" length ${length} exceeds ${max}`,
      );
    }
    this.offset += FIELD_LENGTH_BYTES;
    this.#need(length, `field "${name}"`);
    const value = this.#bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
}

function decodeUtf8(bytes: Uint8Array, offset: number): string {
  // Nearly every URL is ASCII, which needs no decoder call.
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new SrupDecodeError("invalid_utf8", offset, 'field "url" is not valid UTF-8');
  }
}

function hexByte(value: number): string {
  return value.toString(16).padStart(2, "0").toUpperCase();
}
