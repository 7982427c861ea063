/** What /proc says of a process: CPU time, memory, and the machine's load (Linux only). */

// Clock ticks a second of /proc/<pid>/stat's times (`getconf CLK_TCK`): 100 on every Linux Deno
// runs on.
const TICKS_PER_SECOND = 100;

/** User plus system CPU time of process `pid` (all its threads), in milliseconds. */
export function cpuMs(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** Resident set size now and at its peak (VmHWM) of process `pid`, in bytes. */
export function memory(pid: number | "self"): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") * 1024, peak: kb("VmHWM") * 1024 };
}

/** The 1, 5 and 15 minute load averages. */
export function loadAverage(): [number, number, number] {
  const [one, five, fifteen] = Deno.readTextFileSync("/proc/loadavg").split(" ").map(Number);
  return [one!, five!, fifteen!];
}

/** Megabytes, rounded. */
export function mb(bytes: number): number {
  return Math.round(bytes / 1024 / 1024);
}

/** A TCP port free on loopback now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
