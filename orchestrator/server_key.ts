/** The server's Ed25519 key: a PEM file given by FLOTILLA_SERVER_KEY, or one made in the data dir. */
import { join } from "node:path";
import { exists, writeFileAtomic } from "../io/files.ts";
import {
  defaultEd25519,
  keyFingerprint,
  privateKeyFromPem,
  privateKeyToPem,
  randomPrivateKey,
} from "../srup/mod.ts";

/** The server's key pair and where it came from. */
export interface ServerKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  /** [SRUP-10] The first 16 hex characters of SHA-256 over the public key. */
  fingerprint: string;
  path: string;
  /** True when this call generated it. */
  created: boolean;
}

/** Reads `file` when given; otherwise reads or creates `<dataDir>/server.key` (mode 0600). */
export async function loadServerKey(
  options: { dataDir: string; file?: string },
): Promise<ServerKey> {
  const path = options.file ?? join(options.dataDir, "server.key");
  if (options.file || await exists(path)) return await readKey(path);
  return await createKey(path);
}

/** [SRUP-10] Where the next key lives: `file` when given, else `<dataDir>/server-next.key`. */
export function nextKeyPath(options: { dataDir: string; file?: string }): string {
  return options.file ?? join(options.dataDir, "server-next.key");
}

/** [SRUP-10] The next key at `path`, or undefined while there is none. */
export async function loadNextServerKey(path: string): Promise<ServerKey | undefined> {
  return await exists(path) ? await readKey(path) : undefined;
}

/** [SRUP-10] The next key at `path`: read if an operator put one there, else generated (0600). */
export async function makeNextServerKey(path: string): Promise<ServerKey> {
  return await loadNextServerKey(path) ?? await createKey(path);
}

async function readKey(path: string): Promise<ServerKey> {
  let privateKey: Uint8Array;
  try {
    privateKey = privateKeyFromPem(await Deno.readTextFile(path));
  } catch (error) {
    throw new Error(`Cannot read server key "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  return await keyPair(privateKey, path, false);
}

async function createKey(path: string): Promise<ServerKey> {
  const privateKey = randomPrivateKey();
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await writeFileAtomic(path, privateKeyToPem(privateKey), { mode: 0o600 });
  return await keyPair(privateKey, path, true);
}

async function keyPair(privateKey: Uint8Array, path: string, created: boolean): Promise<ServerKey> {
  const publicKey = await (await defaultEd25519()).getPublicKey(privateKey);
  return { privateKey, publicKey, fingerprint: keyFingerprint(publicKey), path, created };
}
