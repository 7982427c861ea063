/** Byte helpers: hex, base64, UUIDs, tokens and input guards. */
import { TOKEN_BYTES } from "./constants.ts";

/** Returns `value` once checked to be a Uint8Array of `length` bytes (any length when omitted). */
export function abytes(value: unknown, length?: number, title = "value"): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`Expected ${title} to be a Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`Expected ${title} of ${length} bytes: got ${value.length}`);
  }
  return value;
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return bytes.toHex();
}

/** Bytes of a hex string; throws SyntaxError for odd length or a non-hex character. */
export function fromHex(hex: string): Uint8Array {
  return Uint8Array.fromHex(hex);
}

/** Standard base64 of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/** Bytes of a standard base64 string; throws SyntaxError when it is not base64. */
export function fromBase64(base64: string): Uint8Array {
  return Uint8Array.fromBase64(base64);
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a UUID in canonical text form. */
export function isUuid(text: string): boolean {
  return UUID_PATTERN.test(text);
}

/** The 16 wire bytes of a canonical UUID. */
export function uuidToBytes(uuid: string): Uint8Array {
  if (!isUuid(uuid)) throw new TypeError(`Invalid UUID: "${uuid}"`);
  return Uint8Array.fromHex(uuid.replaceAll("-", ""));
}

/** The canonical lowercase text of 16 UUID bytes. */
export function bytesToUuid(bytes: Uint8Array): string {
  abytes(bytes, 16, "UUID");
  const hex = bytes.toHex();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/** A fresh random transaction token (16 bytes). */
export function newToken(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
}

/** Constant-time equality of two byte arrays. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
