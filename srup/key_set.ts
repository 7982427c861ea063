/** [SRUP-12] Release key sets: how a new release key comes to be trusted. No I/O. */
import { MAX_KEY_SET_BYTES } from "./constants.ts";
import { defaultEd25519, type Ed25519Backend } from "./ed25519.ts";
import { equalBytes } from "./bytes.ts";

/** [SRUP-12.1] Byte 0 of a key set document. */
export const KEY_SET_FORMAT = 0x01;
/** [SRUP-12.1] Most keys in one set. */
export const MAX_KEY_SET_KEYS = 8;
/** [SRUP-12.1] Most signatures on one document: every key of the old set and of the new. */
export const MAX_KEY_SET_SIGNATURES = 16;
/** The version of the keys a device or server is provisioned with; the first document is 2. */
export const PROVISIONED_KEY_SET_VERSION = 1;
const KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
/** [SRUP-12.1] Prefixed to the signed bytes, so no other signature by a release key passes. */
const DOMAIN = new TextEncoder().encode("flotilla release key set v1\0");

/** The release keys trusted at one version of the chain. */
export interface KeySet {
  /** 1 for the provisioned keys; each document adds one. */
  version: number;
  /** Raw Ed25519 public keys, 32 bytes each; any one verifies a manifest ([SRUP-7.2]). */
  keys: Uint8Array[];
}

/** A decoded key set document. */
export interface SignedKeySet extends KeySet {
  /** Who signed it: a public key and its signature over the body. */
  signatures: { key: Uint8Array; signature: Uint8Array }[];
  /** The whole document as encoded. */
  bytes: Uint8Array;
}

/** Why bytes are not a key set document. */
export type KeySetErrorCode =
  | "too_large"
  | "unknown_format"
  | "truncated"
  | "trailing_bytes"
  | "invalid_field";

/** Thrown by {@linkcode decodeKeySet} for bytes that are not a well-formed key set document. */
export class KeySetError extends Error {
  /** Stable, machine-readable reason. */
  readonly code: KeySetErrorCode;

  constructor(code: KeySetErrorCode, message: string) {
    super(`Cannot decode key set: ${message}`);
    this.name = "KeySetError";
    this.code = code;
  }
}

/** [SRUP-12.1] The document's body: every byte its signatures cover, after the domain prefix. */
export function encodeKeySetBody(set: KeySet): Uint8Array {
  const { version, keys } = set;
  if (
    !Number.isInteger(version) || version <= PROVISIONED_KEY_SET_VERSION || version > 0xffff_ffff
  ) {
    throw new RangeError(`Cannot encode key set: version ${version} is not 2 to 4294967295`);
  }
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_KEY_SET_KEYS) {
    throw new RangeError(`Cannot encode key set: it needs 1 to ${MAX_KEY_SET_KEYS} keys`);
  }
  const body = new Uint8Array(6 + keys.length * KEY_BYTES);
  body[0] = KEY_SET_FORMAT;
  new DataView(body.buffer).setUint32(1, version);
  body[5] = keys.length;
  for (const [i, key] of keys.entries()) {
    if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
      throw new RangeError(`Cannot encode key set: key ${i + 1} is not 32 bytes`);
    }
    if (keys.slice(0, i).some((other) => equalBytes(other, key))) {
      throw new RangeError(`Cannot encode key set: key ${i + 1} is listed twice`);
    }
    body.set(key, 6 + i * KEY_BYTES);
  }
  return body;
}

/**
 * [SRUP-12.2] Signs a key set with each of `privateKeys` (32-byte seeds): the keys of the set
 * before it, and every key it adds. Returns the encoded document.
 */
export async function signKeySet(
  set: KeySet,
  privateKeys: readonly Uint8Array[],
  backend?: Ed25519Backend,
): Promise<Uint8Array> {
  const body = encodeKeySetBody(set);
  if (privateKeys.length === 0 || privateKeys.length > MAX_KEY_SET_SIGNATURES) {
    throw new RangeError(
      `Cannot sign key set: it needs 1 to ${MAX_KEY_SET_SIGNATURES} signing keys`,
    );
  }
  const ed25519 = backend ?? await defaultEd25519();
  const input = signingInput(body);
  const bytes = new Uint8Array(
    body.length + 1 + privateKeys.length * (KEY_BYTES + SIGNATURE_BYTES),
  );
  bytes.set(body);
  bytes[body.length] = privateKeys.length;
  let offset = body.length + 1;
  for (const privateKey of privateKeys) {
    bytes.set(await ed25519.getPublicKey(privateKey), offset);
    bytes.set(await ed25519.sign(input, privateKey), offset + KEY_BYTES);
    offset += KEY_BYTES + SIGNATURE_BYTES;
  }
  return bytes;
}

/** [SRUP-12.1] Decodes a key set document; throws KeySetError only. Signatures are not checked. */
export function decodeKeySet(bytes: Uint8Array): SignedKeySet {
  if (bytes.length > MAX_KEY_SET_BYTES) {
    throw new KeySetError("too_large", `${bytes.length} bytes exceed ${MAX_KEY_SET_BYTES}`);
  }
  const need = (offset: number, count: number, what: string) => {
    if (offset + count > bytes.length) throw new KeySetError("truncated", `ends inside ${what}`);
  };
  need(0, 6, "the header");
  if (bytes[0] !== KEY_SET_FORMAT) {
    throw new KeySetError("unknown_format", `format 0x${bytes[0]!.toString(16)} is unknown`);
  }
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
  if (version <= PROVISIONED_KEY_SET_VERSION) {
    throw new KeySetError("invalid_field", `version ${version} is below 2`);
  }
  const count = bytes[5]!;
  if (count === 0 || count > MAX_KEY_SET_KEYS) {
    throw new KeySetError("invalid_field", `key count ${count} is not 1 to ${MAX_KEY_SET_KEYS}`);
  }
  need(6, count * KEY_BYTES + 1, "the keys");
  const keys: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const key = bytes.slice(6 + i * KEY_BYTES, 6 + (i + 1) * KEY_BYTES);
    if (keys.some((other) => equalBytes(other, key))) {
      throw new KeySetError("invalid_field", `key ${i + 1} is listed twice`);
    }
    keys.push(key);
  }
  let offset = 6 + count * KEY_BYTES;
  const signatureCount = bytes[offset++]!;
  if (signatureCount === 0 || signatureCount > MAX_KEY_SET_SIGNATURES) {
    throw new KeySetError(
      "invalid_field",
      `signature count ${signatureCount} is not 1 to ${MAX_KEY_SET_SIGNATURES}`,
    );
  }
  need(offset, signatureCount * (KEY_BYTES + SIGNATURE_BYTES), "the signatures");
  const signatures: SignedKeySet["signatures"] = [];
  for (let i = 0; i < signatureCount; i++) {
    signatures.push({
      key: bytes.slice(offset, offset + KEY_BYTES),
      signature: bytes.slice(offset + KEY_BYTES, offset + KEY_BYTES + SIGNATURE_BYTES),
    });
    offset += KEY_BYTES + SIGNATURE_BYTES;
  }
  if (offset !== bytes.length) {
    throw new KeySetError("trailing_bytes", `${bytes.length - offset} trailing bytes`);
  }
  return { version, keys, signatures, bytes: bytes.slice() };
}

/** Why a key set document does not follow the trusted set. */
export type KeySetRefusal =
  /** Not a key set document (its KeySetError code follows a colon). */
  | `malformed: ${KeySetErrorCode}`
  /** At or below the trusted version: already applied, or an old one replayed. */
  | "stale"
  /** More than one version above the trusted one: a document in between is missing. */
  | "version_gap"
  /** No key of the trusted set signed it: whoever made it holds no release key. */
  | "not_signed_by_trusted_key"
  /** A key it adds did not sign it: no proof that anyone holds that key. */
  | "new_key_unproven";

/** The outcome of {@linkcode advanceKeySet}. */
export type KeySetStep = { ok: true; set: KeySet } | { ok: false; reason: KeySetRefusal };

/**
 * [SRUP-12.3] The set `bytes` moves `trusted` to: version one above, signed by at least one key of
 * `trusted` and by every key it adds. Never throws on untrusted input.
 */
export async function advanceKeySet(
  trusted: KeySet,
  bytes: Uint8Array,
  backend?: Ed25519Backend,
): Promise<KeySetStep> {
  let document: SignedKeySet;
  try {
    document = decodeKeySet(bytes);
  } catch (error) {
    if (!(error instanceof KeySetError)) throw error;
    return { ok: false, reason: `malformed: ${error.code}` };
  }
  if (document.version <= trusted.version) return { ok: false, reason: "stale" };
  if (document.version !== trusted.version + 1) return { ok: false, reason: "version_gap" };
  const ed25519 = backend ?? await defaultEd25519();
  const input = signingInput(bytes.subarray(0, 6 + document.keys.length * KEY_BYTES));
  const verified: Uint8Array[] = [];
  for (const { key, signature } of document.signatures) {
    if (await ed25519.verify(signature, input, key)) verified.push(key);
  }
  const has = (list: readonly Uint8Array[], key: Uint8Array) =>
    list.some((other) => equalBytes(other, key));
  if (!verified.some((key) => has(trusted.keys, key))) {
    return { ok: false, reason: "not_signed_by_trusted_key" };
  }
  if (document.keys.some((key) => !has(trusted.keys, key) && !has(verified, key))) {
    return { ok: false, reason: "new_key_unproven" };
  }
  return { ok: true, set: { version: document.version, keys: document.keys } };
}

/**
 * [SRUP-12.3] Follows a chain of documents from `trusted`, skipping those already applied (stale);
 * the set it ends at, or the first refusal with the document's index.
 */
export async function followKeySets(
  trusted: KeySet,
  chain: readonly Uint8Array[],
  backend?: Ed25519Backend,
): Promise<{ ok: true; set: KeySet } | { ok: false; reason: KeySetRefusal; index: number }> {
  let set = trusted;
  for (const [index, bytes] of chain.entries()) {
    const step = await advanceKeySet(set, bytes, backend);
    if (step.ok) set = step.set;
    else if (step.reason !== "stale") return { ok: false, reason: step.reason, index };
  }
  return { ok: true, set };
}

function signingInput(body: Uint8Array): Uint8Array {
  const input = new Uint8Array(DOMAIN.length + body.length);
  input.set(DOMAIN);
  input.set(body, DOMAIN.length);
  return input;
}
