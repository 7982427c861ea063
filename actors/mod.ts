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
export { createRolloutEngine, RolloutEngine } from "./engine.ts";
export type {
  ResponseOutcome,
  RolloutEngineOptions,
  RolloutPhase,
  RolloutState,
  RolloutSummary,
  StageSummary,
} from "./engine_types.ts";
export type { Clock, RolloutEvent, RolloutEventType, RolloutPorts } from "./ports.ts";
export { RolloutCommandError, type RolloutCommandErrorCode } from "./errors.ts";
export {
  checkSnapshot,
  type DeviceRecord,
  type IgnoredCounts,
  RECORD_STATES,
  type RolloutSnapshot,
} from "./snapshot.ts";
export type { FailureFigures, HaltReason, PauseReason, SuccessFigures } from "./reasons.ts";
export { DEVICE_STATES, type DeviceState, isFinished } from "./device_state.ts";
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
} from "./rollout_machine.ts";
export { stageEnds, stageOf } from "./stages.ts";
export { backoffDelay, type BackoffRule } from "./backoff.ts";
export { perMinute, type RampCounts, RateLimiter, type RateRule } from "./rate_limit.ts";
