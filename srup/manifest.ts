/** [SRUP-7] Release manifests: what a release key signed, in a small binary layout. No I/O. */
import { MAX_MANIFEST_BYTES } from "./constants.ts";
import { defaultEd25519, type Ed25519Backend } from "./ed25519.ts";

/** [SRUP-7.1] Byte 0 of a manifest. */
export const MANIFEST_FORMAT = 0x01;
/** [SRUP-7.6] Byte 0 of a signed rollback release: format 1 and a rollback range. */
export const MANIFEST_FORMAT_ROLLBACK = 0x02;
/** [SRUP-7.1] Longest name, version or hardware id, in bytes. */
export const MAX_MANIFEST_TEXT = 64;
/** [SRUP-7.1] Most hardware ids in one manifest. */
export const MAX_MANIFEST_HARDWARE = 8;
/** Largest security version (u32). */
export const MAX_SECURITY_VERSION = 0xffff_ffff;
/** Length of the Ed25519 signature that ends a manifest. */
const SIGNATURE_BYTES = 64;
/** [SRUP-7.2] Prefixed to the signed bytes, so no other signature by the key can pass for one. */
const DOMAIN = new TextEncoder().encode("flotilla release manifest v1\0");
/** [SRUP-7.1] Printable ASCII without spaces: one spelling per id, nothing to normalise. */
const TEXT = /^[\x21-\x7e]+$/;

/** What a release key vouches for. */
export interface ReleaseManifest {
  /** SHA-256 of the file, 32 bytes. */
  digest: Uint8Array;
  /** Exact size of the file in bytes: a download stops there. */
  size: number;
  name: string;
  version: string;
  /** Monotonic: a device refuses a release below the one it runs (u32). */
  securityVersion: number;
  /** Hardware ids the file runs on; empty for any. */
  hardware: string[];
  /** Unix milliseconds (whole seconds) after which the release must not be installed. */
  expiresAt?: number;
  /**
   * [SRUP-7.6] A signed rollback release: it installs on a device running a security version from
   * `from` to `to` (inclusive), though its own is lower. Absent for an ordinary release.
   */
  rollbackRange?: { from: number; to: number };
}

/** A decoded manifest with its signature and its encoded bytes. */
export interface SignedManifest extends ReleaseManifest {
  signature: Uint8Array;
  /** The whole manifest as encoded: what INITIATE version 3 carries. */
  bytes: Uint8Array;
}

/** Why bytes are not a manifest. */
export type ManifestErrorCode =
  | "too_large"
  | "unknown_format"
  | "truncated"
  | "trailing_bytes"
  | "invalid_field";

/** Thrown by {@linkcode decodeManifest} for bytes that are not a well-formed manifest. */
export class ManifestError extends Error {
  /** Stable, machine-readable reason. */
  readonly code: ManifestErrorCode;

  constructor(code: ManifestErrorCode, message: string) {
    super(`Cannot decode manifest: ${message}`);
    this.name = "ManifestError";
    this.code = code;
  }
}

/** [SRUP-7.1] The manifest's body: every byte the signature covers, after the domain prefix. */
export function encodeManifestBody(manifest: ReleaseManifest): Uint8Array {
  const texts = [manifest.name, manifest.version, ...checkHardware(manifest.hardware)];
  for (const [i, text] of texts.entries()) {
    const what = i === 0 ? "name" : i === 1 ? "version" : "hardware";
    if (typeof text !== "string" || text.length > MAX_MANIFEST_TEXT || !TEXT.test(text)) {
      throw new RangeError(
        `Cannot encode manifest: ${what} "${text}" must be 1 to ${MAX_MANIFEST_TEXT} printable ASCII characters without spaces`,
      );
    }
  }
  if (!(manifest.digest instanceof Uint8Array) || manifest.digest.length !== 32) {
    throw new RangeError("Cannot encode manifest: digest must be 32 bytes");
  }
  if (!Number.isSafeInteger(manifest.size) || manifest.size < 0) {
    throw new RangeError(`Cannot encode manifest: size ${manifest.size} is not a safe integer`);
  }
  const { securityVersion, expiresAt } = manifest;
  if (
    !Number.isInteger(securityVersion) || securityVersion < 0 ||
    securityVersion > MAX_SECURITY_VERSION
  ) {
    throw new RangeError(
      `Cannot encode manifest: security version ${securityVersion} is not a u32`,
    );
  }
  if (
    expiresAt !== undefined &&
    (!Number.isSafeInteger(expiresAt) || expiresAt <= 0 || expiresAt % 1000 !== 0)
  ) {
    throw new RangeError(
      `Cannot encode manifest: expiry ${expiresAt} is not a whole second after 1970`,
    );
  }
  const range = checkRollbackRange(manifest);
  const size = 1 + 32 + 8 + 4 + 8 + 1 + texts.reduce((sum, text) => sum + 1 + text.length, 0) +
    (range ? 8 : 0);
  const body = new Uint8Array(size);
  const view = new DataView(body.buffer);
  body[0] = range ? MANIFEST_FORMAT_ROLLBACK : MANIFEST_FORMAT;
  body.set(manifest.digest, 1);
  view.setBigUint64(33, BigInt(manifest.size));
  view.setUint32(41, securityVersion);
  view.setBigUint64(45, BigInt((expiresAt ?? 0) / 1000));
  let offset = 53;
  for (const [i, text] of texts.entries()) {
    if (i === 2) body[offset++] = manifest.hardware.length;
    body[offset++] = text.length;
    for (let c = 0; c < text.length; c++) body[offset++] = text.charCodeAt(c);
  }
  if (texts.length === 2) body[offset++] = 0;
  if (range) {
    view.setUint32(offset, range.from);
    view.setUint32(offset + 4, range.to);
  }
  return body;
}

/** [SRUP-7.6] The rollback range, checked: u32 bounds, from <= to, above the own version. */
function checkRollbackRange(manifest: ReleaseManifest): ReleaseManifest["rollbackRange"] {
  const range = manifest.rollbackRange;
  if (range === undefined) return undefined;
  const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= MAX_SECURITY_VERSION;
  if (!u32(range.from) || !u32(range.to) || range.from > range.to) {
    throw new RangeError(
      `Cannot encode manifest: rollback range ${range.from}-${range.to} is not two u32, low to high`,
    );
  }
  // A range at or below the release's own security version allows nothing anti-rollback refuses.
  if (range.from <= manifest.securityVersion) {
    throw new RangeError(
      `Cannot encode manifest: rollback range ${range.from}-${range.to} must start above security version ${manifest.securityVersion}`,
    );
  }
  return range;
}

function checkHardware(hardware: string[]): string[] {
  if (!Array.isArray(hardware) || hardware.length > MAX_MANIFEST_HARDWARE) {
    throw new RangeError(
      `Cannot encode manifest: hardware must be a list of at most ${MAX_MANIFEST_HARDWARE} ids`,
    );
  }
  return hardware;
}

/** [SRUP-7.2] Signs a manifest with a release key (32-byte seed); returns its encoded bytes. */
export async function signManifest(
  manifest: ReleaseManifest,
  privateKey: Uint8Array,
  backend?: Ed25519Backend,
): Promise<Uint8Array> {
  const body = encodeManifestBody(manifest);
  const signature = await (backend ?? await defaultEd25519()).sign(signingInput(body), privateKey);
  const bytes = new Uint8Array(body.length + SIGNATURE_BYTES);
  bytes.set(body);
  bytes.set(signature, body.length);
  return bytes;
}

/** [SRUP-7.1] Decodes manifest bytes; throws ManifestError only. The signature is not checked. */
export function decodeManifest(bytes: Uint8Array): SignedManifest {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new ManifestError("too_large", `${bytes.length} bytes exceed ${MAX_MANIFEST_BYTES}`);
  }
  const need = (offset: number, count: number, what: string) => {
    if (offset + count > bytes.length) throw new ManifestError("truncated", `ends inside ${what}`);
  };
  need(0, 53, "the fixed fields");
  const format = bytes[0];
  if (format !== MANIFEST_FORMAT && format !== MANIFEST_FORMAT_ROLLBACK) {
    throw new ManifestError("unknown_format", `format 0x${bytes[0]!.toString(16)} is unknown`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = view.getBigUint64(33);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ManifestError("invalid_field", `size ${size} exceeds ${Number.MAX_SAFE_INTEGER}`);
  }
  const expires = view.getBigUint64(45);
  if (expires > BigInt(Math.floor(Number.MAX_SAFE_INTEGER / 1000))) {
    throw new ManifestError("invalid_field", `expiry ${expires} is out of range`);
  }
  let offset = 53;
  const text = (what: string): string => {
    need(offset, 1, `the length of ${what}`);
    const length = bytes[offset++]!;
    if (length === 0 || length > MAX_MANIFEST_TEXT) {
      throw new ManifestError(
        "invalid_field",
        `${what} length ${length} is not 1 to ${MAX_MANIFEST_TEXT}`,
      );
    }
    need(offset, length, what);
    const value = String.fromCharCode(...bytes.subarray(offset, offset + length));
    if (!TEXT.test(value)) {
      throw new ManifestError("invalid_field", `${what} is not printable ASCII`);
    }
    offset += length;
    return value;
  };
  const name = text("name");
  const version = text("version");
  need(offset, 1, "the hardware count");
  const count = bytes[offset++]!;
  if (count > MAX_MANIFEST_HARDWARE) {
    throw new ManifestError(
      "invalid_field",
      `hardware count ${count} exceeds ${MAX_MANIFEST_HARDWARE}`,
    );
  }
  const hardware: string[] = [];
  for (let i = 0; i < count; i++) hardware.push(text("hardware"));
  let rollbackRange: ReleaseManifest["rollbackRange"];
  if (format === MANIFEST_FORMAT_ROLLBACK) {
    need(offset, 8, "the rollback range");
    rollbackRange = { from: view.getUint32(offset), to: view.getUint32(offset + 4) };
    offset += 8;
    if (rollbackRange.from > rollbackRange.to) {
      throw new ManifestError(
        "invalid_field",
        `rollback range ${rollbackRange.from}-${rollbackRange.to} runs backwards`,
      );
    }
  }
  need(offset, SIGNATURE_BYTES, "the signature");
  if (offset + SIGNATURE_BYTES !== bytes.length) {
    throw new ManifestError(
      "trailing_bytes",
      `${bytes.length - offset - SIGNATURE_BYTES} trailing bytes`,
    );
  }
  const manifest: SignedManifest = {
    digest: bytes.slice(1, 33),
    size: Number(size),
    name,
    version,
    securityVersion: view.getUint32(41),
    hardware,
    signature: bytes.slice(offset),
    bytes: bytes.slice(),
  };
  if (expires > 0n) manifest.expiresAt = Number(expires) * 1000;
  if (rollbackRange) manifest.rollbackRange = rollbackRange;
  return manifest;
}

/** [SRUP-7.2] Whether one of `releaseKeys` signed the manifest; false for any bad input. */
export async function verifyManifest(
  manifest: SignedManifest,
  releaseKeys: readonly Uint8Array[],
  backend?: Ed25519Backend,
): Promise<boolean> {
  const body = manifest.bytes.subarray(0, manifest.bytes.length - SIGNATURE_BYTES);
  const ed25519 = backend ?? await defaultEd25519();
  for (const key of releaseKeys) {
    if (await ed25519.verify(manifest.signature, signingInput(body), key)) return true;
  }
  return false;
}

function signingInput(body: Uint8Array): Uint8Array {
  const input = new Uint8Array(DOMAIN.length + body.length);
  input.set(DOMAIN);
  input.set(body, DOMAIN.length);
  return input;
}
