/** A cheap summary of a rollout for the API and the simulator: no fleet scan, running counts only. */
import type { HaltReason, PauseReason } from "./reasons.ts";
import type { EngineParts } from "./restore.ts";
import type { IgnoredCounts } from "./snapshot.ts";
import {
  type DeviceState,
  type EngineState,
  IN_FLIGHT_STATES,
  type RolloutPhase,
} from "./states.ts";
import { NO_WINDOW } from "../policies/mod.ts";
import type { WindowGate, WindowGroupStatus } from "./windows.ts";

/** One window group in a summary: its state and how many of its devices wait for it. */
export interface WindowGroupSummary extends WindowGroupStatus {
  /** Devices of this group that wait for it to open (not started, a retry, a held ACTIVATE). */
  waiting: number;
}

/** A rollout's maintenance windows: each group's state, and the devices waiting for one. */
export interface WindowSummary {
  onClose: "finish" | "hold";
  /** Devices waiting for their window, over every group. */
  waiting: number;
  groups: WindowGroupSummary[];
  /**
   * Devices whose window never opens: their `by` value has no windows and the policy no fallback
   * (`open`). Refused at creation; possible after a restart if a device's tag changed meanwhile.
   */
  unmatched: number;
}

/** Figures of one stage. */
export interface StageSummary {
  percent: number;
  /** Devices of this stage alone (stages are cumulative; these are the new ones). */
  devices: number;
  pending: number;
  /** Devices whose INITIATE or ACTIVATE is under way. */
  inFlight: number;
  received: number;
  activated: number;
  failed: number;
  cancelled: number;
  /** Devices that already ran the artifact: never contacted. */
  skipped: number;
}

/** A cheap summary of a rollout for the API and the simulator. */
export interface RolloutSummary {
  id: string;
  state: EngineState;
  phase: RolloutPhase;
  /** Index of the current stage. */
  stage: number;
  stages: StageSummary[];
  devices: number;
  counts: Record<DeviceState, number>;
  /** Devices holding a concurrency slot. */
  inFlight: number;
  activated: number;
  failed: number;
  pauseReason: PauseReason | null;
  haltReason: HaltReason | null;
  /** Clock time the current bake ends, or null. */
  bakeUntil: number | null;
  /** Started devices by number of INITIATE attempts. */
  attempts: Record<string, number>;
  ignored: IgnoredCounts;
  /** The policy's maintenance windows now, or null without any. */
  windows: WindowSummary | null;
}

/** What a summary takes besides the engine's parts. */
export interface SummaryInput {
  state: EngineState;
  haltReason: HaltReason | null;
  ignored: IgnoredCounts;
  windows: WindowSummary | null;
}

/** One stage's figures from its percent, size and device count per state. */
export function stageFigures(
  percent: number,
  devices: number,
  count: (state: DeviceState) => number,
): StageSummary {
  return {
    percent,
    devices,
    pending: count("pending"),
    inFlight: IN_FLIGHT_STATES.reduce((sum, state) => sum + count(state), 0),
    received: count("received"),
    activated: count("activated"),
    failed: count("failed"),
    cancelled: count("cancelled"),
    skipped: count("skipped"),
  };
}

/** The summary of a rollout from its parts. */
export function summarize(parts: EngineParts, input: SummaryInput): RolloutSummary {
  const { table, supervisor } = parts;
  const context = supervisor.context;
  const counts = table.counts();
  const stages = parts.policy.stages.map((stage, index) =>
    stageFigures(
      stage.percent,
      table.stageSize(index),
      (state) => table.stageCount(index, state),
    )
  );
  return {
    id: parts.id,
    state: input.state,
    phase: supervisor.phase,
    stage: context.stage,
    stages,
    devices: table.size,
    counts,
    inFlight: parts.flights.size,
    activated: counts.activated,
    failed: counts.failed,
    pauseReason: context.pauseReason,
    haltReason: input.haltReason,
    bakeUntil: context.bakeUntil,
    attempts: table.attemptHistogram(),
    ignored: input.ignored,
    windows: input.windows,
  };
}

/**
 * The windows at clock time `now`: a group's waiting devices are its devices not started in the
 * stages begun so far while it is closed, plus its retries and ACTIVATEs deferred to its opening.
 */
export function windowSummary(
  parts: EngineParts,
  windows: WindowGate,
  now: number,
): WindowSummary {
  const { table, supervisor, flights, dispatch } = parts;
  const over = supervisor.over;
  const stage = supervisor.context.stage;
  const pendingUpTo = (group: number, last: number) => {
    let n = 0;
    for (let s = 0; s <= last; s++) n += table.groupPending(s, group);
    return n;
  };
  const groups = windows.status(now).map((status, group) => {
    const pending = status.open ? 0 : pendingUpTo(group, stage);
    const waiting = over
      ? 0
      : pending + flights.waitingForWindow(group) + dispatch.activationsWaiting(group);
    return { ...status, waiting };
  });
  return {
    onClose: windows.holdsActivate ? "hold" : "finish",
    waiting: groups.reduce((sum, group) => sum + group.waiting, 0),
    groups,
    unmatched: over ? 0 : pendingUpTo(NO_WINDOW, table.ends.length - 1),
  };
}
