/**
 * The engine's scale benchmark: 1,000,000 virtual devices through policies/canary.yaml with 2%
 * transient failures (0xFD), in simulated time. Targets: ≤ 120 s wall and ≤ 2 GB peak RSS.
 * Run: `deno run -A bench/engine_1m.ts [--devices N] [--fail MIX]` (part of `deno task bench`).
 */
import { parseArgs } from "node:util";
import { loadPolicyFile } from "../policies/mod.ts";
import { parseFaults, runVirtual } from "../sim/mod.ts";

const WALL_TARGET_S = 120;
const RSS_TARGET_BYTES = 2 * 1024 ** 3;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    devices: { type: "string", default: "1000000" },
    fail: { type: "string", default: "fd=0.02" },
    seed: { type: "string", default: "1" },
  },
});
const loaded = await loadPolicyFile(new URL("../policies/canary.yaml", import.meta.url).pathname);
const summary = runVirtual({
  policy: loaded.policy,
  provenance: loaded.provenance,
  devices: Number(values.devices),
  seed: Number(values.seed),
  faults: parseFaults(values.fail),
});
const peakRss = await peakRssBytes();
const figures = {
  devices: summary.devices,
  state: summary.state,
  activated: summary.activated,
  failed: summary.failed,
  attempts: summary.attempts,
  simulatedHours: Math.round(summary.simulatedSeconds / 36) / 100,
  wallSeconds: summary.wallSeconds,
  devicesPerWallSecond: Math.round(summary.devices / summary.wallSeconds),
  peakRssMiB: Math.round(peakRss / 1024 ** 2),
  targets: { wallSeconds: WALL_TARGET_S, peakRssMiB: RSS_TARGET_BYTES / 1024 ** 2 },
};
console.log(JSON.stringify(figures, null, 2));
const ok = summary.state === "completed" && summary.wallSeconds <= WALL_TARGET_S &&
  peakRss <= RSS_TARGET_BYTES;
if (!ok) {
  console.error("engine_1m: a target was missed (state, wall time or peak RSS)");
  Deno.exit(1);
}

/** Peak resident set size of this process (VmHWM), or the current RSS where /proc is missing. */
async function peakRssBytes(): Promise<number> {
  try {
    const status = await Deno.readTextFile("/proc/self/status");
    const kib = status.match(/^VmHWM:\s+(\d+) kB$/m)?.[1];
    if (kib) return Number(kib) * 1024;
  } catch {
    // Not Linux: fall through.
  }
  return Deno.memoryUsage().rss;
}
