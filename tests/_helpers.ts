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
