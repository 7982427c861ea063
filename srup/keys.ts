/** Ed25519 keys on disk: PEM, PKCS#8 private and SPKI public, as `openssl genpkey` writes them. */
import { abytes } from "./bytes.ts";
import { PKCS8_PREFIX, seedToPkcs8, SPKI_PREFIX } from "./ed25519.ts";

// PKCS#8 v2 (RFC 5958 OneAsymmetricKey) also carries the public key; accepted on read.
const PKCS8_V2_PREFIX = Uint8Array.fromHex("3051020101300506032b657004220420");

/** The PEM text of a private key seed. */
export function privateKeyToPem(seed: Uint8Array): string {
  return pem("PRIVATE KEY", seedToPkcs8(seed));
}

/** The PEM text of a raw public key. */
export function publicKeyToPem(raw: Uint8Array): string {
  abytes(raw, 32, "public key");
  const der = new Uint8Array(SPKI_PREFIX.length + 32);
  der.set(SPKI_PREFIX);
  der.set(raw, SPKI_PREFIX.length);
  return pem("PUBLIC KEY", der);
}

/** The 32-byte seed of a PEM PKCS#8 Ed25519 private key. */
export function privateKeyFromPem(text: string): Uint8Array {
  const der = unpem(text, "PRIVATE KEY");
  if (der.length === 48 && startsWith(der, PKCS8_PREFIX)) return der.slice(16);
  if (der.length >= 83 && startsWith(der, PKCS8_V2_PREFIX)) return der.slice(16, 48);
  throw new TypeError("Cannot read private key: not a PKCS#8 Ed25519 key");
}

/** The 32 raw bytes of a PEM SPKI Ed25519 public key. */
export function publicKeyFromPem(text: string): Uint8Array {
  const der = unpem(text, "PUBLIC KEY");
  if (der.length === 44 && startsWith(der, SPKI_PREFIX)) return der.slice(12);
  throw new TypeError("Cannot read public key: not an SPKI Ed25519 key");
}

function pem(label: string, der: Uint8Array): string {
  const lines = der.toBase64().match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function unpem(text: string, label: string): Uint8Array {
  const match = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text);
  if (!match) throw new TypeError(`Cannot read key: no "${label}" PEM block`);
  try {
    return Uint8Array.fromBase64(match[1]!.replace(/\s+/g, ""));
  } catch {
    throw new TypeError(`Cannot read key: "${label}" PEM block is not valid base64`);
  }
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return prefix.every((byte, i) => bytes[i] === byte);
}
