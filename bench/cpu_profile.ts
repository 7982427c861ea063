/**
 * Summarises a V8 CPU profile (`deno run --cpu-prof`, a `.cpuprofile` file): self time by function
 * and by package, busiest first. `deno run --allow-read bench/cpu_profile.ts FILE [TOP]`.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code comes from: an npm package, flotilla's own folder, or V8's bookkeeping. */
function owner(url: string, name: string): string {
  if (url.startsWith("wasm://")) return "@electric-sql+pglite (WASM)";
  // Deno's WebCrypto runs Ed25519 on the calling thread: native frames named sign and verify.
  if (!url && (name === "sign" || name === "verify")) return "Ed25519 (WebCrypto sign, verify)";
  if (!url) return name.startsWith("(") ? name : "(native, other)";
  const npm = /node_modules\/\.deno\/([^/]+)\//.exec(url) ??
    /npm\/[^/]+\/([^/]+\/[^/]+)\//.exec(url);
  if (npm) return npm[1]!.replace(/@\d[^/]*$/, "");
  const own = /\/(srup|actors|policies|obs|io|mqtt|device|db|orchestrator|http|sim|app|cli)\//
    .exec(url);
  if (own) return `flotilla/${own[1]}`;
  if (url.startsWith("ext:") || url.startsWith("node:")) return url.split("/")[0]!;
  return url;
}

if (import.meta.main) {
  const [file, top = "25"] = Deno.args;
  if (!file) throw new TypeError("Missing argument: the .cpuprofile file");
  const profile = JSON.parse(await Deno.readTextFile(file)) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const total = profile.endTime - profile.startTime;
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const short = url.replace(/^.*\/(node_modules\/\.deno\/|npm\/)/, "").replace(
      /^file:\/\/.*?\/(?=[a-z_]+\/)/,
      "",
    );
    const key = `${functionName || "(anonymous)"} ${short}${url ? `:${lineNumber + 1}` : ""}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const who = owner(url, functionName);
    byOwner.set(who, (byOwner.get(who) ?? 0) + us);
  }
  const share = (us: number) => `${((us / total) * 100).toFixed(1)}%`.padStart(6);
  console.log(`profile: ${(total / 1e6).toFixed(1)} s, ${profile.samples.length} samples`);
  console.log("\nself time by package or folder:");
  for (const [who, us] of [...byOwner].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
    console.log(`${share(us)}  ${who}`);
  }
  console.log("\nself time by function:");
  for (const [key, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
    console.log(`${share(us)}  ${key}`);
  }
}
