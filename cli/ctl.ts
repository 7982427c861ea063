/** `flotilla ctl`. */

/** Runs `ctl`; returns the exit code. */
export function run(_args: string[]): Promise<number> {
  console.error("flotilla ctl is not built yet: see the open issues");
  return Promise.resolve(1);
}
