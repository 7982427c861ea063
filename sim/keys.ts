/** Identities of live-simulation devices: real Ed25519 keys, cached on disk so a rerun reuses them. */
import { join } from "node:path";
import { writeFileAtomic } from "../io/files.ts";
import { bytesToUuid, defaultEd25519, randomPrivateKey, uuidToBytes } from "../srup/mod.ts";

/** Who the simulated devices are: `ids[i]` has seed `seeds[i*32..]` and key `publicKeys[i*32..]`. */
export interface SimKeys {
  ids: string[];
  /** Ed25519 seeds, 32 bytes each, back to back. */
  seeds: Uint8Array;
  /** Raw Ed25519 public keys, 32 bytes each, back to back. */
  publicKeys: Uint8Array;
  /** How many were made by this call (the rest came from the cache). */
  generated: number;
}

const FILE = "devices.bin";
// One record: 16-byte UUID, 32-byte seed, 32-byte public key.
const RECORD = 80;

/** Loads the first `count` identities cached in `dir`, making and caching any that are missing. */
export async function loadSimKeys(dir: string, count: number): Promise<SimKeys> {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(`Invalid device count: ${count} is not a whole number`);
  }
  const path = join(dir, FILE);
  let cached = new Uint8Array();
  try {
    cached = await Deno.readFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  // A torn tail (a killed write cannot leave one, but a hand-copied file can) is dropped.
  const have = Math.floor(cached.length / RECORD);
  const records = new Uint8Array(Math.max(have, count) * RECORD);
  records.set(cached.subarray(0, have * RECORD));
  const ed = await defaultEd25519();
  for (let i = have; i < count; i++) {
    const seed = randomPrivateKey();
    const at = i * RECORD;
    records.set(uuidToBytes(crypto.randomUUID()), at);
    records.set(seed, at + 16);
    records.set(await ed.getPublicKey(seed), at + 48);
  }
  if (count > have) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, records, { mode: 0o600 });
  }
  const ids: string[] = new Array(count);
  const seeds = new Uint8Array(count * 32);
  const publicKeys = new Uint8Array(count * 32);
  for (let i = 0; i < count; i++) {
    const at = i * RECORD;
    ids[i] = bytesToUuid(records.subarray(at, at + 16));
    seeds.set(records.subarray(at + 16, at + 48), i * 32);
    publicKeys.set(records.subarray(at + 48, at + 80), i * 32);
  }
  return { ids, seeds, publicKeys, generated: Math.max(0, count - have) };
}
