/** The live simulation's summary, built from the API's rollout and what the devices recorded. */
import type { FleetResults } from "./fleet.ts";
import type { RolloutJson } from "./live_api.ts";

/** One poll of the rollout: `t` is milliseconds since the rollout was created. */
export interface LiveSample {
  t: number;
  state: string;
  stage: number;
  counts: Record<string, number>;
}

/** Per-device update latency, INITIATE received to activation confirmed, in milliseconds. */
export interface LatencyStats {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** What `sim --json` prints for a live run; keys shared with the virtual mode mean the same. */
export interface LiveSummary {
  mode: "live";
  state: string;
  policy: { name: string; sha256: string | null; commit: string | null };
  seed: number;
  devices: number;
  activated: number;
  failed: number;
  cancelled: number;
  pending: number;
  haltReason: Record<string, unknown> | null;
  pauseReason: Record<string, unknown> | null;
  stages: NonNullable<RolloutJson["stages"]>;
  counts: Record<string, number>;
  /** Devices by number of INITIATEs they received. */
  attempts: Record<string, number>;
  latencyMs: LatencyStats;
  /** Activated devices per second of rollout time. */
  devicesPerSecond: number;
  connection: "device" | "gateway";
  workers: number;
  /** Faults the devices injected, by kind, and frames their agents refused. */
  injected: Record<string, number>;
  rejected: Record<string, number>;
  /** Peak RSS of this process: orchestrator and devices when in-process, devices only otherwise. */
  rssPeakBytes: number;
  inProcess: boolean;
  registerSeconds: number;
  connectSeconds: number;
  rolloutSeconds: number;
  wallSeconds: number;
  /** Every poll of the rollout, for the report. */
  timeline: LiveSample[];
  /** Each device's latency in ms (activated devices only), for the report's histogram. */
  latencies: number[];
}

/** Everything {@linkcode summarizeLive} needs. */
export interface LiveFacts {
  rollout: RolloutJson;
  seed: number;
  samples: LiveSample[];
  fleets: FleetResults[];
  mode: "device" | "gateway";
  workers: number;
  inProcess: boolean;
  rssPeakBytes: number;
  rolloutStartedAt: number;
  timings: { registerMs: number; connectMs: number; rolloutMs: number; wallMs: number };
}

/** Builds the summary of a finished live run. */
export function summarizeLive(facts: LiveFacts): LiveSummary {
  const { rollout } = facts;
  const latencies: number[] = [];
  const attempts: Record<string, number> = {};
  const injected: Record<string, number> = {};
  const rejected: Record<string, number> = {};
  for (const fleet of facts.fleets) {
    for (let i = 0; i < fleet.attempts.length; i++) {
      const n = fleet.attempts[i]!;
      if (n > 0) attempts[n] = (attempts[n] ?? 0) + 1;
      const activated = fleet.activatedAt[i]!;
      if (activated > 0 && fleet.initiatedAt[i]! > 0) {
        latencies.push(activated - fleet.initiatedAt[i]!);
      }
    }
    add(injected, fleet.injected);
    add(rejected, fleet.rejected);
  }
  latencies.sort((a, b) => a - b);
  const counts = rollout.counts;
  const seconds = facts.timings.rolloutMs / 1000;
  return {
    mode: "live",
    state: rollout.state,
    policy: rollout.policy,
    seed: facts.seed,
    devices: rollout.devices,
    activated: counts.activated ?? 0,
    failed: (counts.failed ?? 0) + (counts.timed_out ?? 0),
    cancelled: counts.cancelled ?? 0,
    pending: counts.pending ?? 0,
    haltReason: rollout.haltReason,
    pauseReason: rollout.pauseReason,
    stages: rollout.stages ?? [],
    counts,
    attempts,
    latencyMs: latencyStats(latencies),
    devicesPerSecond: seconds > 0 ? round((counts.activated ?? 0) / seconds) : 0,
    connection: facts.mode,
    workers: facts.workers,
    injected,
    rejected,
    rssPeakBytes: facts.rssPeakBytes,
    inProcess: facts.inProcess,
    registerSeconds: round(facts.timings.registerMs / 1000),
    connectSeconds: round(facts.timings.connectMs / 1000),
    rolloutSeconds: round(seconds),
    wallSeconds: round(facts.timings.wallMs / 1000),
    timeline: facts.samples,
    latencies,
  };
}

/** Percentiles of sorted `values` (nearest rank). */
export function latencyStats(sorted: number[]): LatencyStats {
  const at = (q: number) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! : 0;
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted.at(-1) ?? 0,
    mean: sorted.length ? round(sum / sorted.length) : 0,
  };
}

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
