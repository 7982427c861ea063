/** Small helpers shared by the tests. */
import { fromHex } from "../srup/mod.ts";

/** RFC 8032 section 7.1, TEST 1: a fixed key pair for reproducible signatures. */
export const TEST_PRIVATE_KEY = fromHex(
  "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
);
export const TEST_PUBLIC_KEY = fromHex(
  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
);

/** ASCII bytes of `text`. */
export function ascii(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** A small deterministic PRNG for reproducible tests: the simulator's mulberry32. */
export { mulberry32 as seededRandom } from "../sim/random.ts";

/** The repository's CLI entry. */
export const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Runs `main.ts` with `args` in a child process; its exit code and output as text. */
export async function flotilla(
  args: string[],
  options: { stdin?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  return {
    code,
    stdout: new TextDecoder().decode(stdout),
    stderr: new TextDecoder().decode(stderr),
  };
}

/** A `main.ts serve` child process, with everything it printed so far. */
export interface ServeChild {
  /** The API's base URL, from the start lines. */
  apiUrl: string;
  /** stdout and stderr so far, in the order read. */
  output(): string;
  /** Stops it with SIGTERM; its exit code, once everything it printed has been read. */
  stop(): Promise<number>;
}

/** Runs `main.ts serve` with `env` (ephemeral ports unless set) until it prints its API URL. */
export async function serveChild(
  env: Record<string, string>,
  ms = 60_000,
  options: { nofile?: number } = {},
): Promise<ServeChild> {
  const deno = [Deno.execPath(), "run", "--allow-all", MAIN, "serve"];
  // prlimit (util-linux) sets the child's open-file limit, soft and hard.
  const argv = options.nofile === undefined
    ? deno
    : ["prlimit", `--nofile=${options.nofile}:${options.nofile}`, ...deno];
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env: { PORT: "0", FLOTILLA_MQTT_PORT: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const listeners = new Set<() => void>();
  const collect = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({
        write(chunk) {
          text += chunk;
          for (const listener of listeners) listener();
        },
      }),
    );
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const status = child.status;
  const apiUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`serve printed no API URL in ${ms} ms`)), ms);
    const check = () => {
      const match = /^\s*API\s+(https?:\/\/\S+)/m.exec(text);
      if (match) done(undefined, match[1]);
    };
    function done(error?: Error, url?: string) {
      clearTimeout(timer);
      listeners.delete(check);
      if (error) reject(error);
      else resolve(url!);
    }
    listeners.add(check);
    status.then(() => done(new Error(`serve ended before listening: ${text}`)));
    check();
  }).catch(async (error) => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await status;
    throw error;
  });
  return {
    apiUrl,
    output: () => text,
    async stop() {
      child.kill("SIGTERM");
      const { code } = await status;
      await drained;
      return code;
    },
  };
}

/** Mounts a tmpfs of `megabytes` at a new temp dir; undefined when this machine does not allow it. */
export async function mountTmpfs(megabytes: number): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "flotilla-tmpfs-" });
  try {
    const mounted = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${megabytes}m`, "tmpfs", dir],
      stdout: "null",
      stderr: "null",
    }).output();
    if (mounted.success) return dir;
  } catch {
    // No mount command.
  }
  await Deno.remove(dir);
  return undefined;
}

/** Whether a tmpfs can be mounted here: tried once with a small one, unmounted at once. */
export async function canMountTmpfs(): Promise<boolean> {
  if (Deno.uid() !== 0) return false;
  const probe = await mountTmpfs(1);
  if (probe === undefined) return false;
  await new Deno.Command("umount", { args: [probe] }).output();
  await Deno.remove(probe);
  return true;
}
