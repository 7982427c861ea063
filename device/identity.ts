/** A device's id and Ed25519 key, made once by `device provision`. */
import { join } from "node:path";
import { exists, syncDirectory, writeFileAtomic } from "../io/files.ts";
import type { DeviceKeyStore } from "./key_store.ts";
import {
  defaultEd25519,
  isUuid,
  privateKeyFromPem,
  privateKeyToPem,
  randomPrivateKey,
} from "../srup/mod.ts";

/** File names of the identity inside the device directory; `next` is a proposed key ([SRUP-11.3]). */
export const IDENTITY_FILES = {
  id: "device.json",
  key: "device.key",
  next: "device.key.next",
} as const;

/** Who a device is. */
export interface DeviceIdentity {
  /** UUID v4, lowercase. */
  id: string;
  /** Ed25519 seed, 32 bytes. */
  privateKey: Uint8Array;
  /** Raw Ed25519 public key, 32 bytes. */
  publicKey: Uint8Array;
}

/** Creates an id and a key in `dir`; refuses to replace an existing key. */
export async function provisionDevice(dir: string): Promise<DeviceIdentity> {
  const keyPath = join(dir, IDENTITY_FILES.key);
  if (await exists(keyPath)) {
    throw new Error(`Cannot provision device: "${keyPath}" already exists`);
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const id = crypto.randomUUID();
  const privateKey = randomPrivateKey();
  const publicKey = await (await defaultEd25519()).getPublicKey(privateKey);
  // The key first: a kill before the id is written leaves a directory that refuses to run.
  await writeFileAtomic(keyPath, privateKeyToPem(privateKey), { mode: 0o600 });
  await writeFileAtomic(join(dir, IDENTITY_FILES.id), JSON.stringify({ id }) + "\n");
  return { id, privateKey, publicKey };
}

/** Reads the identity that `provisionDevice` wrote in `dir`. */
export async function loadIdentity(dir: string): Promise<DeviceIdentity> {
  const id = await readId(dir);
  const keyPath = join(dir, IDENTITY_FILES.key);
  let pem: string;
  try {
    pem = await Deno.readTextFile(keyPath);
  } catch (error) {
    throw new Error(`Cannot read device key "${keyPath}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  const privateKey = privateKeyFromPem(pem);
  const publicKey = await (await defaultEd25519()).getPublicKey(privateKey);
  return { id, privateKey, publicKey };
}

/** The device id in `dir`. */
export async function readId(dir: string): Promise<string> {
  const path = join(dir, IDENTITY_FILES.id);
  let id: unknown;
  try {
    id = JSON.parse(await Deno.readTextFile(path)).id;
  } catch (error) {
    throw new Error(`Cannot read device id "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (typeof id !== "string" || !isUuid(id)) {
    throw new TypeError(`Cannot read device id "${path}": "${id}" is not a UUID`);
  }
  return id.toLowerCase();
}

/**
 * [SRUP-11.3] The proposed key in `dir/device.key.next` (PKCS#8, 0600); committing renames it
 * over `device.key`, so a kill leaves the old key or the new one, never neither.
 */
export function fileKeyStore(dir: string): DeviceKeyStore {
  const nextPath = join(dir, IDENTITY_FILES.next);
  return {
    async loadNext() {
      let pem: string;
      try {
        pem = await Deno.readTextFile(nextPath);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw error;
      }
      return privateKeyFromPem(pem);
    },
    async saveNext(seed) {
      await writeFileAtomic(nextPath, privateKeyToPem(seed), { mode: 0o600 });
    },
    async commitNext(seed) {
      // Written again first: the rename then moves exactly this key, even if the file changed.
      await writeFileAtomic(nextPath, privateKeyToPem(seed), { mode: 0o600 });
      await Deno.rename(nextPath, join(dir, IDENTITY_FILES.key));
      await syncDirectory(dir);
    },
  };
}
