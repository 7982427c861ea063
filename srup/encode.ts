/** Encoding of SRUP messages to frames. Misuse throws; see docs/protocol.md. */
import {
  FIELD_LENGTH_BYTES,
  MAX_DIGEST_BYTES,
  MAX_FRAME_BYTES,
  MAX_KEY_BYTES,
  MAX_KEY_SET_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_SEQUENCE,
  MAX_SIGNATURE_BYTES,
  MAX_TARGET_BYTES,
  MAX_TOKEN_BYTES,
  MAX_URL_BYTES,
  NOT_AFTER_BYTES,
  OVERLAP_BYTES,
  SEQUENCE_BYTES,
  TYPE_ACTIVATE,
  TYPE_DEVICE_KEY,
  TYPE_INITIATE,
  TYPE_KEY_ROTATE,
  TYPE_RELEASE_KEYS,
  TYPE_RESPONSE,
  TYPE_ROLLBACK,
} from "./constants.ts";
import type { InitiateMessage, SrupMessage } from "./types.ts";
import { allocBytes } from "./alloc.ts";

const utf8 = new TextEncoder();

/** Encodes a signed message as a frame. */
export function encodeMessage(message: SrupMessage): Uint8Array {
  return encodeFrame(message, true);
}

/** [SRUP-4.1] The bytes a signature covers: the frame without its signature field. */
export function encodeSigningInput(message: SrupMessage): Uint8Array {
  return encodeFrame(message, false);
}

function encodeFrame(message: SrupMessage, withSignature: boolean): Uint8Array {
  const { version } = message;
  if (version !== 1 && version !== 2 && version !== 3) {
    throw new RangeError(`Cannot encode message: version ${String(version)} is not 1, 2 or 3`);
  }
  const sequence = checkSequence(message);
  let size = 2 + (sequence === undefined ? 0 : SEQUENCE_BYTES);
  if (withSignature) size += fieldSize(message.signature, "signature", MAX_SIGNATURE_BYTES);
  size += fieldSize(message.token, "token", MAX_TOKEN_BYTES);

  let typeByte: number;
  let urlBytes = 0;
  switch (message.type) {
    case "initiate":
      typeByte = TYPE_INITIATE;
      urlBytes = utf8Length(message.url);
      if (urlBytes === 0 || urlBytes > MAX_URL_BYTES) {
        throw new RangeError(
          `Cannot encode message: field "url" length ${urlBytes} is not 1 to ${MAX_URL_BYTES}`,
        );
      }
      size += fieldSize(message.target, "target", MAX_TARGET_BYTES) +
        FIELD_LENGTH_BYTES + urlBytes + fieldSize(message.digest, "digest", MAX_DIGEST_BYTES) +
        releaseSize(message);
      break;
    case "response": {
      typeByte = TYPE_RESPONSE;
      const { status } = message;
      if (!Number.isInteger(status) || status < 0 || status > 0xff) {
        throw new RangeError(`Cannot encode message: status ${status} is not a byte`);
      }
      size += 1;
      break;
    }
    case "activate":
      typeByte = TYPE_ACTIVATE;
      break;
    case "rollback":
      // [SRUP-9] Only version 2: a ROLLBACK without a sequence id could be replayed for ever.
      if (version !== 2) {
        throw new RangeError(`Cannot encode message: ROLLBACK needs version 2, not ${version}`);
      }
      typeByte = TYPE_ROLLBACK;
      size += fieldSize(message.target, "target", MAX_TARGET_BYTES) +
        fieldSize(message.digest, "digest", MAX_DIGEST_BYTES);
      break;
    case "key_rotate":
      // [SRUP-10] Only version 2, as for a ROLLBACK.
      if (version !== 2) {
        throw new RangeError(`Cannot encode message: KEY_ROTATE needs version 2, not ${version}`);
      }
      if (
        typeof message.overlap !== "bigint" || message.overlap < 0n ||
        message.overlap > MAX_SEQUENCE
      ) {
        throw new RangeError(`Cannot encode message: overlap ${message.overlap} is not a u64`);
      }
      typeByte = TYPE_KEY_ROTATE;
      size += fieldSize(message.target, "target", MAX_TARGET_BYTES) +
        fieldSize(message.key, "key", MAX_KEY_BYTES) +
        fieldSize(message.proof, "proof", MAX_SIGNATURE_BYTES) + OVERLAP_BYTES;
      break;
    case "device_key":
      // [SRUP-11] Only version 2: a key change without a sequence id could be replayed for ever.
      typeByte = versionTwo(TYPE_DEVICE_KEY, "DEVICE_KEY", version);
      size += fieldSize(message.key, "key", MAX_KEY_BYTES) +
        fieldSize(message.proof, "proof", MAX_SIGNATURE_BYTES);
      break;
    case "release_keys":
      typeByte = versionTwo(TYPE_RELEASE_KEYS, "RELEASE_KEYS", version);
      size += fieldSize(message.target, "target", MAX_TARGET_BYTES) +
        fieldSize(message.keySet, "key set", MAX_KEY_SET_BYTES);
      break;
    default:
      throw new TypeError(
        `Cannot encode message: type "${String((message as { type: unknown }).type)}" is unknown`,
      );
  }
  if (withSignature && size > MAX_FRAME_BYTES) {
    throw new RangeError(
      `Cannot encode message: frame of ${size} bytes exceeds ${MAX_FRAME_BYTES}`,
    );
  }

  // [SRUP-2.1] to [SRUP-2.4]
  const frame = allocBytes(size);
  frame[0] = version;
  frame[1] = typeByte;
  let offset = 2;
  if (sequence !== undefined) {
    new DataView(frame.buffer, frame.byteOffset, size).setBigUint64(offset, sequence);
    offset += SEQUENCE_BYTES;
  }
  if (withSignature) offset = writeField(frame, offset, message.signature);
  if (message.type === "initiate") {
    offset = writeField(frame, offset, message.target);
    offset = writeField(frame, offset, message.token);
    frame[offset] = urlBytes >> 8;
    frame[offset + 1] = urlBytes & 0xff;
    offset += FIELD_LENGTH_BYTES;
    utf8.encodeInto(message.url, frame.subarray(offset, offset + urlBytes));
    offset = writeField(frame, offset + urlBytes, message.digest);
    if (version === 3) {
      offset = writeField(frame, offset, message.manifest!);
      new DataView(frame.buffer, frame.byteOffset, size).setBigUint64(offset, message.notAfter!);
    }
  } else if (message.type === "rollback") {
    offset = writeField(frame, offset, message.target);
    offset = writeField(frame, offset, message.token);
    writeField(frame, offset, message.digest);
  } else if (message.type === "key_rotate") {
    offset = writeField(frame, offset, message.target);
    offset = writeField(frame, offset, message.token);
    offset = writeField(frame, offset, message.key);
    offset = writeField(frame, offset, message.proof);
    new DataView(frame.buffer, frame.byteOffset, size).setBigUint64(offset, message.overlap);
  } else if (message.type === "device_key") {
    offset = writeField(frame, offset, message.token);
    offset = writeField(frame, offset, message.key);
    writeField(frame, offset, message.proof);
  } else if (message.type === "release_keys") {
    offset = writeField(frame, offset, message.target);
    offset = writeField(frame, offset, message.token);
    writeField(frame, offset, message.keySet);
  } else {
    offset = writeField(frame, offset, message.token);
    if (message.type === "response") frame[offset] = message.status;
  }
  return frame;
}

/** The type byte of a version 2 only message; a RangeError in any other version. */
function versionTwo(typeByte: number, name: string, version: number): number {
  if (version !== 2) {
    throw new RangeError(`Cannot encode message: ${name} needs version 2, not ${version}`);
  }
  return typeByte;
}

function writeField(frame: Uint8Array, offset: number, value: Uint8Array): number {
  frame[offset] = value.length >> 8;
  frame[offset + 1] = value.length & 0xff;
  frame.set(value, offset + FIELD_LENGTH_BYTES);
  return offset + FIELD_LENGTH_BYTES + value.length;
}

/** The UTF-8 length of `text`, without encoding it; lone surrogates count as U+FFFD. */
function utf8Length(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) {
      length += 1;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      // A surrogate pair is 2 UTF-16 units and 4 UTF-8 bytes; a lone one becomes 3-byte U+FFFD.
      if (next >= 0xdc00 && next <= 0xdfff) {
        length += 2;
        i++;
      } else {
        length += 2;
      }
    } else {
      length += 2;
    }
  }
  return length;
}

/** [SRUP-2.4] The bytes a version 3 INITIATE adds (manifest and not-after); none before it. */
function releaseSize(message: InitiateMessage): number {
  const { manifest, notAfter } = message;
  if (message.version !== 3) {
    if (manifest !== undefined || notAfter !== undefined) {
      throw new TypeError("Cannot encode message: only version 3 carries a manifest and not-after");
    }
    return 0;
  }
  if (typeof notAfter !== "bigint") {
    throw new TypeError("Cannot encode message: version 3 needs a bigint not-after time");
  }
  if (notAfter < 0n || notAfter > MAX_SEQUENCE) {
    throw new RangeError(`Cannot encode message: not-after ${notAfter} is not a u64`);
  }
  return fieldSize(manifest!, "manifest", MAX_MANIFEST_BYTES) + NOT_AFTER_BYTES;
}

function checkSequence(message: SrupMessage): bigint | undefined {
  const { sequence } = message;
  if (message.version === 1) {
    if (sequence !== undefined) {
      throw new TypeError("Cannot encode message: version 1 carries no sequence id");
    }
    return undefined;
  }
  if (typeof sequence !== "bigint") {
    throw new TypeError(
      `Cannot encode message: version ${message.version} needs a bigint sequence id`,
    );
  }
  if (sequence < 0n || sequence > MAX_SEQUENCE) {
    throw new RangeError(`Cannot encode message: sequence id ${sequence} is not a u64`);
  }
  return sequence;
}

function fieldSize(value: Uint8Array, name: string, max: number): number {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Cannot encode message: field "${name}" is not a Uint8Array`);
  }
  if (value.length === 0) {
    throw new RangeError(`Cannot encode message: field "${name}" is empty`);
  }
  if (value.length > max) {
    throw new RangeError(
      `Cannot encode message: field "${name}" length ${value.length} exceeds ${max}`,
    );
  }
  return FIELD_LENGTH_BYTES + value.length;
}
