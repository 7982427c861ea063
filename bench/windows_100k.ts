/**
 * Maintenance windows at scale: 100,000 virtual devices in three time zones (Berlin, New York,
 * Tokyo) through policies/night-windows.yaml, a week of nightly windows in simulated time, with 2%
 * transient failures and 0.5% timeouts. Fails unless the rollout completes, no INITIATE went out
 * outside its device's window (checked by the simulator, apart from the engine), and it took at most
 * 60 s of wall time. The run starts on 2026-03-27, so Berlin springs forward mid-rollout.
 * Run: `deno run -A bench/windows_100k.ts [--devices N]` (part of `deno task bench`).
 */
import { parseArgs } from "node:util";
import { loadPolicyFile } from "../policies/mod.ts";
import { parseFaults, runVirtual } from "../sim/mod.ts";

const WALL_TARGET_S = 60;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    devices: { type: "string", default: "100000" },
    fail: { type: "string", default: "fd=0.02,timeout=0.005" },
    seed: { type: "string", default: "7" },
    start: { type: "string", default: "2026-03-27T12:00:00Z" },
  },
});
const night = new URL("../policies/night-windows.yaml", import.meta.url).pathname;
const loaded = await loadPolicyFile(night);
const summary = runVirtual({
  policy: loaded.policy,
  provenance: loaded.provenance,
  devices: Number(values.devices),
  seed: Number(values.seed),
  start: Date.parse(values.start),
  faults: parseFaults(values.fail),
});
const figures = {
  devices: summary.devices,
  state: summary.state,
  activated: summary.activated,
  failed: summary.failed,
  sites: summary.windows?.values,
  initiates: summary.windows?.initiates,
  outsideWindow: summary.windows?.outsideWindow,
  simulatedDays: Math.round(summary.simulatedSeconds / 864) / 100,
  wallSeconds: summary.wallSeconds,
  targets: { wallSeconds: WALL_TARGET_S, outsideWindow: 0 },
};
console.log(JSON.stringify(figures, null, 2));
if (
  summary.state !== "completed" || summary.windows?.outsideWindow !== 0 ||
  summary.wallSeconds > WALL_TARGET_S
) {
  console.error("windows_100k: a target was missed (state, INITIATE outside a window, wall time)");
  Deno.exit(1);
}
