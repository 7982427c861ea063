/** One agent per device directory: an exclusive lock the kernel releases when the process ends. */
import { join } from "node:path";

/** The lock file inside the device directory. */
export const LOCK_FILE = "agent.lock";

/** A held lock; `release()` lets another agent take the directory. */
export interface DirLock {
  release(): void;
}

/**
 * Takes the lock on `dir`, or throws at once if another agent holds it: two agents on one
 * directory would take each other's broker session (same client id) over and over.
 */
export async function lockDeviceDir(dir: string): Promise<DirLock> {
  const path = join(dir, LOCK_FILE);
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  let locked = false;
  try {
    locked = await file.tryLock(true);
  } finally {
    if (!locked) file.close();
  }
  if (!locked) {
    throw new Error(`Cannot run device: another agent is running on "${dir}" (it holds "${path}")`);
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      file.close();
    },
  };
}
