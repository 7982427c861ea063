/** [SRUP-10] Server key rotation: the new key's proof of itself, and key fingerprints. */
import { sha256 } from "@noble/hashes/sha2";
import { abytes } from "./bytes.ts";
import { FIELD_LENGTH_BYTES } from "./constants.ts";
import { defaultEd25519 } from "./ed25519.ts";
import type { SignOptions } from "./sign.ts";
import type { KeyRotateMessage } from "./types.ts";

/** [SRUP-10.1] Prefixes every proof, so it can never pass for a frame or manifest signature. */
export const KEY_PROOF_CONTEXT = "flotilla server key v1";

/** What a KEY_ROTATE's proof binds: the new key, to this server, this device and this token. */
export interface KeyProofFields {
  /** The new raw public key. */
  key: Uint8Array;
  /** The server id of the response topic (lowercase hex). */
  serverId: string;
  /** The device id, 16 bytes. */
  target: Uint8Array;
  token: Uint8Array;
}

const ascii = new TextEncoder();

/** [SRUP-10.1] The bytes the proof signs: the context, a zero byte, then each field with its u16 length. */
export function keyProofInput(fields: KeyProofFields): Uint8Array {
  const parts = [fields.key, ascii.encode(fields.serverId), fields.target, fields.token];
  const context = ascii.encode(KEY_PROOF_CONTEXT);
  let size = context.length + 1;
  for (const part of parts) size += FIELD_LENGTH_BYTES + abytes(part).length;
  const input = new Uint8Array(size);
  input.set(context);
  let offset = context.length + 1;
  for (const part of parts) {
    input[offset] = part.length >> 8;
    input[offset + 1] = part.length & 0xff;
    input.set(part, offset + FIELD_LENGTH_BYTES);
    offset += FIELD_LENGTH_BYTES + part.length;
  }
  return input;
}

/** [SRUP-10.1] The new key's signature over its proof input; `privateKey` is the new key's seed. */
export async function signKeyProof(
  fields: KeyProofFields,
  privateKey: Uint8Array,
  options: SignOptions = {},
): Promise<Uint8Array> {
  const backend = options.backend ?? await defaultEd25519();
  return await backend.sign(keyProofInput(fields), privateKey);
}

/**
 * [SRUP-10.1] Whether a KEY_ROTATE's proof is the named key's signature for this server; false,
 * never an exception, for any malformed or forged proof.
 */
export async function verifyKeyProof(
  message: KeyRotateMessage,
  serverId: string,
  options: SignOptions = {},
): Promise<boolean> {
  let input: Uint8Array;
  try {
    input = keyProofInput({ ...message, serverId });
  } catch {
    return false;
  }
  const backend = options.backend ?? await defaultEd25519();
  return await backend.verify(message.proof, input, message.key);
}

/** A public key's fingerprint: the first 16 hex characters of SHA-256 over its raw bytes. */
export function keyFingerprint(publicKey: Uint8Array): string {
  return sha256(abytes(publicKey, 32, "public key")).toHex().slice(0, 16);
}
