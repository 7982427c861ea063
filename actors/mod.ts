/**
 * @module
 * The rollout engine: XState machines for devices and rollouts, and the engine that supervises
 * them. No I/O and no clock of its own: everything live is injected (docs/engine.md).
 *
 * ```ts
 * const engine = createRolloutEngine({ id, policy, devices, clock, ports, random, token });
 * engine.start();                              // or restore: createRolloutEngine({ ..., snapshot })
 * engine.response(deviceId, token, status);    // every verified RESPONSE
 * engine.pause(); engine.resume(); engine.promote(); engine.cancel(); // RolloutCommandError → 409
 * engine.summary(); engine.snapshot(); engine.shouldSend(deviceId, token);
 * ```
 *
 * - `clock`: `now()`, `setTimeout(fn, ms)`, `clearTimeout(id)` (XState-compatible).
 * - `ports`: `initiate(device, token, attempt)`, `activate(device, token)`, `event(event)`; all
 *   synchronous, none may call back into the engine synchronously.
 * - Stage k covers the first ceil(percent_k% × n) devices of `devices`, in order.
 */
export {
  createRolloutEngine,
  type ResponseOutcome,
  RolloutEngine,
  type RolloutEngineOptions,
} from "./engine.ts";
export type { RolloutSummary, StageSummary, WindowGroupSummary, WindowSummary } from "./summary.ts";
export type { WindowGroupStatus } from "./windows.ts";
export { stageFigures } from "./summary.ts";
export type { Clock, RolloutPorts } from "./ports.ts";
export {
  type DeviceEventBase,
  type DeviceRolloutEvent,
  FINAL_EVENT_TYPE,
  isDeviceEvent,
  type RolloutEvent,
  type RolloutEventType,
  type RolloutLevelEvent,
  ROW_STATE_OF,
  type StageFigures,
} from "./events.ts";
export { RolloutCommandError, type RolloutCommandErrorCode } from "./errors.ts";
export {
  checkSnapshot,
  type DeviceRecord,
  type IgnoredCounts,
  type RolloutSnapshot,
} from "./snapshot.ts";
export { type FromRowsOptions, initialHead, snapshotFromRows, type StartedRow } from "./restore.ts";
export {
  type FailureFigures,
  type HaltReason,
  type PauseReason,
  type SuccessFigures,
  WAIT_REASONS,
  type WaitReason,
} from "./reasons.ts";
export { describeHaltReason, describePauseReason } from "./describe.ts";
export * from "./states.ts";
export {
  type DeviceContext,
  type DeviceEvent,
  type DeviceInput,
  deviceMachine,
  type RetryRule,
} from "./device_machine.ts";
export {
  type RolloutContext,
  rolloutMachine,
  type RolloutMachineEvent,
  type RolloutPlan,
  type RolloutReport,
  type RolloutTag,
} from "./rollout_machine.ts";
export { stageEnds, stageOf } from "./stages.ts";
export { backoffDelay, type BackoffRule } from "./backoff.ts";
export { perMinute, type RampCounts, RateLimiter, type RateRule } from "./rate_limit.ts";
