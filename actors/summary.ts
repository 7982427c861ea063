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
}

/** What a summary takes besides the engine's parts. */
export interface SummaryInput {
  state: EngineState;
  haltReason: HaltReason | null;
  ignored: IgnoredCounts;
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
  };
}
