/** The engine's public types: its options, states and summary. */
import type { Policy, PolicyProvenance } from "../policies/mod.ts";
import type { DeviceState } from "./device_state.ts";
import type { Clock, RolloutPorts } from "./ports.ts";
import type { HaltReason, PauseReason } from "./reasons.ts";
import type { IgnoredCounts, RolloutSnapshot } from "./snapshot.ts";

/** Options of `createRolloutEngine()`. */
export interface RolloutEngineOptions {
  /** The rollout's id, carried by every event. */
  id: string;
  policy: Policy;
  /** Target device ids in rollout order; stage k covers the first ceil(percent_k% × n). */
  devices: readonly string[];
  clock: Clock;
  ports: RolloutPorts;
  /** Uniform [0, 1) for backoff jitter; default `Math.random`. Seed it for reproducible runs. */
  random?: () => number;
  /** Makes a fresh 16-byte token for each INITIATE; default srup's `newToken()`. */
  token?: () => Uint8Array;
  /** Where the policy came from, recorded in `rollout.started`. */
  provenance?: PolicyProvenance;
  /** Restore this rollout instead of starting afresh (from the engine's `snapshot()`). */
  snapshot?: RolloutSnapshot;
}

/** The rollout's state in the words the API and the simulator use. */
export type RolloutState =
  | "created"
  | "running"
  | "paused"
  | "waiting_approval"
  | "halted"
  | "completed"
  | "cancelled";

/** The supervisor's finer state behind {@linkcode RolloutState}. */
export type RolloutPhase =
  | "idle"
  | "dispatching"
  | "activating"
  | "baking"
  | "waiting_approval"
  | "paused"
  | "halted"
  | "completed"
  | "cancelled";

/** What became of one RESPONSE handed to the engine's `response()`. */
export type ResponseOutcome = "accepted" | "stale_token" | "not_in_flight" | "unexpected";

/** Figures of one stage. */
export interface StageSummary {
  percent: number;
  /** Devices of this stage alone (stages are cumulative; these are the new ones). */
  devices: number;
  pending: number;
  inFlight: number;
  received: number;
  activated: number;
  failed: number;
  cancelled: number;
}

/** A cheap summary of a rollout for the API and the simulator. */
export interface RolloutSummary {
  id: string;
  state: RolloutState;
  phase: RolloutPhase;
  /** Index of the current stage. */
  stage: number;
  stages: StageSummary[];
  devices: number;
  counts: Record<DeviceState, number>;
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

/** The public state of a supervisor phase. */
export function stateOf(phase: RolloutPhase): RolloutState {
  switch (phase) {
    case "idle":
      return "created";
    case "dispatching":
    case "activating":
    case "baking":
      return "running";
    default:
      return phase;
  }
}
