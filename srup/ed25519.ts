/** Ed25519 behind one interface: WebCrypto (fast path) and @noble/ed25519 (portable reference). */
import * as noble from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2";
import { abytes } from "./bytes.ts";
import { KeyCache } from "./key_cache.ts";

/** Signs and verifies with raw 32-byte keys: the private seed and the public key. */
export interface Ed25519Backend {
  readonly name: "native" | "noble";
  getPublicKey(privateKey: Uint8Array): Promise<Uint8Array>;
  sign(data: Uint8Array, privateKey: Uint8Array): Promise<Uint8Array>;
  /** False for any bad signature or key bytes; never throws on untrusted input. */
  verify(signature: Uint8Array, data: Uint8Array, publicKey: Uint8Array): Promise<boolean>;
}

/** DER prefix of a PKCS#8 Ed25519 private key (RFC 8410), followed by the 32-byte seed. */
export const PKCS8_PREFIX = Uint8Array.fromHex("302e020100300506032b657004220420");
/** DER prefix of an SPKI Ed25519 public key (RFC 8410), followed by the 32 raw bytes. */
export const SPKI_PREFIX = Uint8Array.fromHex("302a300506032b6570032100");

/** Key bytes to a PKCS#8 document. */
export function seedToPkcs8(seed: Uint8Array): Uint8Array<ArrayBuffer> {
  abytes(seed, 32, "private key");
  const der = new Uint8Array(PKCS8_PREFIX.length + 32);
  der.set(PKCS8_PREFIX);
  der.set(seed, PKCS8_PREFIX.length);
  return der;
}

// Imported CryptoKeys are cached: importKey costs about a fifth of a sign or verify. A Deno
// CryptoKey costs ~1.6 KB of heap and ~3.4 KB of RSS, so the cache is sized for the devices in
// flight (each answers twice within seconds), not the fleet: 16,384 keys is about 55 MB.
const KEY_CACHE_LIMIT = 16_384;

const privateKeys = new KeyCache({ limit: KEY_CACHE_LIMIT });
const publicKeys = new KeyCache({ limit: KEY_CACHE_LIMIT });
const ALGORITHM = { name: "Ed25519" } as const;

function importPrivate(seed: Uint8Array): Promise<CryptoKey> {
  abytes(seed, 32, "private key");
  return privateKeys.get(
    seed,
    () => crypto.subtle.importKey("pkcs8", seedToPkcs8(seed), ALGORITHM, true, ["sign"]),
  );
}

function importPublic(raw: Uint8Array): Promise<CryptoKey> {
  return publicKeys.get(
    raw,
    () =>
      crypto.subtle.importKey("raw", raw as Uint8Array<ArrayBuffer>, ALGORITHM, false, ["verify"]),
  );
}

/** Deno's native WebCrypto Ed25519. */
export const nativeEd25519: Ed25519Backend = {
  name: "native",
  async getPublicKey(privateKey) {
    const jwk = await crypto.subtle.exportKey("jwk", await importPrivate(privateKey));
    return Uint8Array.fromBase64(jwk.x!, { alphabet: "base64url" });
  },
  async sign(data, privateKey) {
    const key = await importPrivate(privateKey);
    return new Uint8Array(
      await crypto.subtle.sign(ALGORITHM, key, data as Uint8Array<ArrayBuffer>),
    );
  },
  async verify(signature, data, publicKey) {
    if (signature.length !== 64 || publicKey.length !== 32) return false;
    try {
      const key = await importPublic(publicKey);
      return await crypto.subtle.verify(
        ALGORITHM,
        key,
        signature as Uint8Array<ArrayBuffer>,
        data as Uint8Array<ArrayBuffer>,
      );
    } catch {
      return false;
    }
  },
};

// zip215 off: strict RFC 8032 / FIPS 186-5 rules, so both backends accept exactly the same
// signatures and a signature one side accepts can never be rejected by the other.
const NOBLE_VERIFY = { zip215: false } as const;

// Synchronous SHA-512 from @noble/hashes: noble's async path awaits WebCrypto for every hash,
// which made it about 3 times slower.
noble.hashes.sha512 = sha512;

/** @noble/ed25519, audited and portable. */
export const nobleEd25519: Ed25519Backend = {
  name: "noble",
  getPublicKey(privateKey) {
    return Promise.resolve(noble.getPublicKey(abytes(privateKey, 32, "private key")));
  },
  sign(data, privateKey) {
    return Promise.resolve(noble.sign(data, abytes(privateKey, 32, "private key")));
  },
  verify(signature, data, publicKey) {
    if (signature.length !== 64 || publicKey.length !== 32) return Promise.resolve(false);
    try {
      return Promise.resolve(noble.verify(signature, data, publicKey, NOBLE_VERIFY));
    } catch {
      return Promise.resolve(false);
    }
  },
};

let detected: Promise<Ed25519Backend> | undefined;

/** The native backend when this runtime's WebCrypto has Ed25519, otherwise noble. */
export function defaultEd25519(): Promise<Ed25519Backend> {
  detected ??= crypto.subtle.generateKey(ALGORITHM, false, ["sign", "verify"]).then(
    () => nativeEd25519,
    () => nobleEd25519,
  );
  return detected;
}

/** A new random private key (32-byte seed). */
export function randomPrivateKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}
