/** Crash-safe file writes: temp file, fsync, rename, fsync of the directory. */
import { dirname } from "node:path";

/** Options for {@linkcode writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** File mode of the new file; 0o600 for secrets. */
  mode?: number;
}

/** Replaces `path` with `data` so that a kill at any instant leaves the old or the new content. */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  const mode = options.mode ?? 0o644;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode });
    try {
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      // umask may have narrowed the mode; chmod makes the requested one exact.
      await Deno.chmod(temp, mode);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Makes a rename or create inside `dir` durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic there.
  } finally {
    handle.close();
  }
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
