/** The server's Ed25519 key: a PEM file given by FLOTILLA_SERVER_KEY, or one made in the data dir. */
import { join } from "node:path";
import { exists, writeFileAtomic } from "../io/files.ts";
import {
  defaultEd25519,
  privateKeyFromPem,
  privateKeyToPem,
  randomPrivateKey,
} from "../srup/mod.ts";

/** The server's key pair and where it came from. */
export interface ServerKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  path: string;
  /** True when this start generated it. */
  created: boolean;
}

/** Reads `file` when given; otherwise reads or creates `<dataDir>/server.key` (mode 0600). */
export async function loadServerKey(
  options: { dataDir: string; file?: string },
): Promise<ServerKey> {
  const path = options.file ?? join(options.dataDir, "server.key");
  let created = false;
  let privateKey: Uint8Array;
  if (options.file || await exists(path)) {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      throw new Error(`Cannot read server key "${path}": ${(error as Error).message}`, {
        cause: error,
      });
    }
    try {
      privateKey = privateKeyFromPem(text);
    } catch (error) {
      throw new Error(`Cannot read server key "${path}": ${(error as Error).message}`, {
        cause: error,
      });
    }
  } else {
    privateKey = randomPrivateKey();
    await Deno.mkdir(options.dataDir, { recursive: true });
    await writeFileAtomic(path, privateKeyToPem(privateKey), { mode: 0o600 });
    created = true;
  }
  const publicKey = await (await defaultEd25519()).getPublicKey(privateKey);
  return { privateKey, publicKey, path, created };
}
