/**
 * @module
 * The SRUP protocol core: wire codec, Ed25519 signatures and status codes. No I/O.
 * The format is specified in docs/protocol.md.
 */
export * from "./constants.ts";
export * from "./status.ts";
export * from "./types.ts";
export { SrupDecodeError, type SrupDecodeErrorCode } from "./errors.ts";
export { encodeMessage, encodeSigningInput } from "./encode.ts";
export { decodeMessage } from "./decode.ts";
export { signMessage, type SignOptions, verifyMessage } from "./sign.ts";
export {
  defaultEd25519,
  type Ed25519Backend,
  nativeEd25519,
  nobleEd25519,
  randomPrivateKey,
} from "./ed25519.ts";
export { privateKeyFromPem, privateKeyToPem, publicKeyFromPem, publicKeyToPem } from "./keys.ts";
export {
  abytes,
  bytesToUuid,
  equalBytes,
  fromBase64,
  fromHex,
  isUuid,
  newToken,
  toBase64,
  toHex,
  uuidToBytes,
} from "./bytes.ts";
export {
  KEY_PROOF_CONTEXT,
  keyFingerprint,
  type KeyProofFields,
  keyProofInput,
  signKeyProof,
  verifyKeyProof,
} from "./key_rotate.ts";
export {
  decodeManifest,
  encodeManifestBody,
  MANIFEST_FORMAT,
  MANIFEST_FORMAT_ROLLBACK,
  ManifestError,
  type ManifestErrorCode,
  MAX_MANIFEST_HARDWARE,
  MAX_MANIFEST_TEXT,
  MAX_SECURITY_VERSION,
  type ReleaseManifest,
  type SignedManifest,
  signManifest,
  verifyManifest,
} from "./manifest.ts";
export {
  type DeviceKeyFault,
  deviceKeyProofInput,
  type DeviceKeyRequest,
  signDeviceKey,
  verifyDeviceKey,
} from "./device_key.ts";
export {
  advanceKeySet,
  decodeKeySet,
  encodeKeySetBody,
  followKeySets,
  KEY_SET_FORMAT,
  type KeySet,
  KeySetError,
  type KeySetErrorCode,
  type KeySetRefusal,
  type KeySetStep,
  MAX_KEY_SET_KEYS,
  MAX_KEY_SET_SIGNATURES,
  PROVISIONED_KEY_SET_VERSION,
  type SignedKeySet,
  signKeySet,
} from "./key_set.ts";
