/** [SRUP-11] DEVICE_KEY: a device replaces its own key. No I/O. */
import { SEQUENCE_BYTES } from "./constants.ts";
import { defaultEd25519, type Ed25519Backend } from "./ed25519.ts";
import { signMessage, verifyMessage } from "./sign.ts";
import type { DeviceKeyMessage } from "./types.ts";

/** [SRUP-11.2] Prefixed to what the new key signs, so its proof can pass for nothing else. */
const DOMAIN = new TextEncoder().encode("flotilla device key v1\0");

/** What {@linkcode signDeviceKey} takes: the keys and this frame's sequence id and token. */
export interface DeviceKeyRequest {
  /** The key the device signs with now (32-byte seed). */
  oldPrivateKey: Uint8Array;
  /** The key it moves to (32-byte seed). */
  newPrivateKey: Uint8Array;
  sequence: bigint;
  token: Uint8Array;
}

/** [SRUP-11.2] The bytes the new key signs: domain, old key, new key, sequence id, token. */
export function deviceKeyProofInput(
  oldKey: Uint8Array,
  message: Pick<DeviceKeyMessage, "key" | "sequence" | "token">,
): Uint8Array {
  const input = new Uint8Array(
    DOMAIN.length + oldKey.length + message.key.length + SEQUENCE_BYTES + message.token.length,
  );
  let offset = 0;
  for (const part of [DOMAIN, oldKey, message.key]) {
    input.set(part, offset);
    offset += part.length;
  }
  new DataView(input.buffer).setBigUint64(offset, message.sequence ?? 0n);
  input.set(message.token, offset + SEQUENCE_BYTES);
  return input;
}

/** [SRUP-11] A DEVICE_KEY with the new key's proof, signed by the old key. */
export async function signDeviceKey(
  request: DeviceKeyRequest,
  backend?: Ed25519Backend,
): Promise<DeviceKeyMessage> {
  const ed25519 = backend ?? await defaultEd25519();
  const oldKey = await ed25519.getPublicKey(request.oldPrivateKey);
  const key = await ed25519.getPublicKey(request.newPrivateKey);
  const unsigned = { key, sequence: request.sequence, token: request.token };
  const proof = await ed25519.sign(deviceKeyProofInput(oldKey, unsigned), request.newPrivateKey);
  return await signMessage<DeviceKeyMessage>(
    {
      type: "device_key",
      version: 2,
      ...unsigned,
      proof,
      signature: new Uint8Array(),
    },
    request.oldPrivateKey,
    { backend: ed25519 },
  );
}

/** Why {@linkcode verifyDeviceKey} refuses a DEVICE_KEY. */
export type DeviceKeyFault = "bad_signature" | "bad_key_proof";

/**
 * [SRUP-11.2] Whether `signer` signed the frame and the key it names signed its proof: null when
 * both hold, else which one failed. Never throws on untrusted input.
 */
export async function verifyDeviceKey(
  message: DeviceKeyMessage,
  signer: Uint8Array,
  backend?: Ed25519Backend,
): Promise<DeviceKeyFault | null> {
  const ed25519 = backend ?? await defaultEd25519();
  if (!await verifyMessage(message, signer, { backend: ed25519 })) return "bad_signature";
  const input = deviceKeyProofInput(signer, message);
  if (!await ed25519.verify(message.proof, input, message.key)) return "bad_key_proof";
  return null;
}
