/** Signing and verifying whole SRUP messages. */
import { defaultEd25519, type Ed25519Backend } from "./ed25519.ts";
import { encodeSigningInput } from "./encode.ts";
import type { SrupMessage } from "./types.ts";

/** Options for {@linkcode signMessage} and {@linkcode verifyMessage}. */
export interface SignOptions {
  /** Defaults to native WebCrypto when available, otherwise noble. */
  backend?: Ed25519Backend;
}

/** [SRUP-4.1] Returns a copy of `message` with `signature` set. */
export async function signMessage<T extends SrupMessage>(
  message: T,
  privateKey: Uint8Array,
  options: SignOptions = {},
): Promise<T> {
  const backend = options.backend ?? await defaultEd25519();
  const signature = await backend.sign(encodeSigningInput(message), privateKey);
  return { ...message, signature };
}

/** [SRUP-4.2] Whether `message` carries a valid signature by `publicKey`; never throws on bad input. */
export async function verifyMessage(
  message: SrupMessage,
  publicKey: Uint8Array,
  options: SignOptions = {},
): Promise<boolean> {
  let input: Uint8Array;
  try {
    input = encodeSigningInput(message);
  } catch {
    return false;
  }
  const backend = options.backend ?? await defaultEd25519();
  return backend.verify(message.signature, input, publicKey);
}
