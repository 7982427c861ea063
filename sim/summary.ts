/** The simulator's summary: JSON for scripts, a table for people. */
import {
  describeHaltReason,
  describePauseReason,
  type EngineState,
  type HaltReason,
  type PauseReason,
  type RolloutEngine,
} from "../actors/mod.ts";
import { formatDuration, type Policy, type PolicyProvenance } from "../policies/mod.ts";

/** One stage in the summary. */
export interface SimStage {
  percent: number;
  devices: number;
  activated: number;
  failed: number;
  received: number;
  cancelled: number;
  pending: number;
}

/** What `sim --json` prints. */
export interface SimSummary {
  state: EngineState;
  policy: { name: string; sha256: string | null; commit: string | null };
  seed: number;
  devices: number;
  activated: number;
  failed: number;
  cancelled: number;
  pending: number;
  haltReason: HaltReason | null;
  pauseReason: PauseReason | null;
  stages: SimStage[];
  /** Devices by number of INITIATE attempts. */
  attempts: Record<string, number>;
  ignored: { staleToken: number; notInFlight: number; unexpected: number };
  simulatedSeconds: number;
  wallSeconds: number;
  /** With maintenance windows: every INITIATE checked against its device's window; else null. */
  windows: SimWindows | null;
}

/** A virtual run's maintenance windows, checked apart from the engine. */
export interface SimWindows {
  /** The tag the windows go by, or null (one set of windows for every device). */
  by: string | null;
  /** The tag values dealt to the devices in turn. */
  values: string[];
  initiates: number;
  /** INITIATEs sent while the device's window was closed: 0 unless the engine is wrong. */
  outsideWindow: number;
}

/** Facts of a run the engine does not know. */
export interface RunFacts {
  policy: Policy;
  provenance: PolicyProvenance | null;
  seed: number;
  simulatedMs: number;
  wallMs: number;
  windows?: SimWindows | null;
}

/** The summary of a finished virtual run. */
export function summarize(engine: RolloutEngine, facts: RunFacts): SimSummary {
  const summary = engine.summary();
  return {
    state: summary.state,
    policy: {
      name: facts.policy.name,
      sha256: facts.provenance?.sha256 ?? null,
      commit: facts.provenance?.commit ?? null,
    },
    seed: facts.seed,
    devices: summary.devices,
    activated: summary.activated,
    failed: summary.failed,
    cancelled: summary.counts.cancelled,
    pending: summary.counts.pending,
    haltReason: summary.haltReason,
    pauseReason: summary.pauseReason,
    stages: summary.stages.map((stage) => ({
      percent: stage.percent,
      devices: stage.devices,
      activated: stage.activated,
      failed: stage.failed,
      received: stage.received,
      cancelled: stage.cancelled,
      pending: stage.pending,
    })),
    attempts: summary.attempts,
    ignored: summary.ignored,
    simulatedSeconds: facts.simulatedMs / 1000,
    wallSeconds: Math.round(facts.wallMs) / 1000,
    windows: facts.windows ?? null,
  };
}

/** The summary as a readable table. */
export function formatSummary(summary: SimSummary): string {
  const lines = [
    `policy ${summary.policy.name}${
      summary.policy.sha256 ? ` (sha256 ${summary.policy.sha256.slice(0, 12)})` : ""
    }, ${summary.devices} devices, seed ${summary.seed}`,
    `state ${summary.state}: ${summary.activated} activated, ${summary.failed} failed, ` +
    `${summary.cancelled} cancelled, ${summary.pending} pending`,
    `simulated ${formatDuration(summary.simulatedSeconds * 1000)}, wall ${summary.wallSeconds}s`,
    "",
  ];
  const header = [
    "stage",
    "percent",
    "devices",
    "activated",
    "failed",
    "received",
    "cancelled",
    "pending",
  ];
  const rows = summary.stages.map((s, i) => [
    String(i),
    `${s.percent}%`,
    ...[s.devices, s.activated, s.failed, s.received, s.cancelled, s.pending].map(String),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  for (const row of [header, ...rows]) {
    lines.push(
      row.map((cell, c) => c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)).join("  "),
    );
  }
  lines.push("");
  const attempts = Object.entries(summary.attempts).map(([n, count]) => `${n}: ${count}`);
  lines.push(`attempts per device  ${attempts.length ? attempts.join(", ") : "none"}`);
  const windows = summary.windows;
  if (windows) {
    const spread = windows.by ? ` by ${windows.by} (${windows.values.join(", ")})` : "";
    lines.push(
      `windows${spread}: ${windows.initiates} INITIATEs, ${windows.outsideWindow} outside their window`,
    );
  }
  if (summary.haltReason) {
    lines.push(`halted: ${lowerFirst(describeHaltReason(summary.haltReason))}`);
  }
  if (summary.pauseReason) {
    lines.push(`paused: ${lowerFirst(describePauseReason(summary.pauseReason))}`);
  }
  return lines.join("\n");
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
