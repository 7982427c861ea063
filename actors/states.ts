/**
 * The one vocabulary of states: a device's in a rollout, a rollout's, and the supervisor's finer
 * phases. db/, orchestrator/, http/, sim/, cli/ and the dashboard all take their words from here.
 */
import { WAIT_REASONS } from "./reasons.ts";

/**
 * Every device state, in code order; `pending` means not started yet, `skipped` that the device
 * already runs the rollout's artifact and is never contacted.
 */
export const DEVICE_STATES = [
  "pending",
  "initiated",
  "received",
  "activating",
  "activated",
  "retrying",
  "timed_out",
  "failed",
  "cancelled",
  "skipped",
] as const;

/**
 * What a rollout does to its devices: `update` installs an artifact (INITIATE, then ACTIVATE);
 * `rollback` sends each a ROLLBACK ([SRUP-9]) to activate its previous version again; `rotate-key`
 * sends each a KEY_ROTATE ([SRUP-10]) to trust the server's next key.
 */
export const ROLLOUT_ACTIONS = ["update", "rollback", "rotate-key"] as const;

/** A rollout's action. */
export type RolloutAction = typeof ROLLOUT_ACTIONS[number];

/** The state of one device in a rollout. */
export type DeviceState = typeof DEVICE_STATES[number];

/** The compact code of each state, as stored in the device table's per-device byte array. */
export const STATE_CODE: Readonly<Record<DeviceState, number>> = Object.fromEntries(
  DEVICE_STATES.map((state, code) => [state, code]),
) as Record<DeviceState, number>;

/** States a started device's record (and row) holds: `timed_out` is momentary, never recorded. */
export const RECORD_STATES = [
  "initiated",
  "received",
  "activating",
  "activated",
  "retrying",
  "failed",
  "cancelled",
] as const satisfies readonly DeviceState[];

/** A state a device record holds. */
export type RecordState = typeof RECORD_STATES[number];

/**
 * States a rollout_devices row can hold: `pending` until the device starts, then a record state;
 * `skipped` from creation for a device that already runs the artifact.
 */
export const ROW_STATES = [
  "pending",
  "skipped",
  ...RECORD_STATES,
] as const satisfies readonly DeviceState[];

/** A state a rollout_devices row holds. */
export type RowState = typeof ROW_STATES[number];

/** Whether a stored row's state is a record state (its device started). */
export function isRecordState(state: string): state is RecordState {
  return (RECORD_STATES as readonly string[]).includes(state);
}

/** States of a device whose INITIATE or ACTIVATE is under way (a received device waits apart). */
export const IN_FLIGHT_STATES = [
  "initiated",
  "activating",
  "retrying",
  "timed_out",
] as const satisfies readonly DeviceState[];

/** States a device is done with its rollout in. */
export const FINAL_DEVICE_STATES = [
  "activated",
  "failed",
  "cancelled",
  "skipped",
] as const satisfies readonly DeviceState[];

/** Whether a device in `state` is done with its rollout. */
export function isFinalDevice(state: DeviceState): boolean {
  return (FINAL_DEVICE_STATES as readonly DeviceState[]).includes(state);
}

/**
 * States a rollout can be in, stored and shown; the same words the simulator prints. `scheduled`:
 * created with a start time still to come; nothing is sent until then.
 */
export const ROLLOUT_STATES = [
  "scheduled",
  "running",
  "paused",
  "waiting_approval",
  "halted",
  "completed",
  "cancelled",
] as const;

/** A rollout's state. */
export type RolloutState = typeof ROLLOUT_STATES[number];

/**
 * States of a rollout the engine still drives (or will, once its start time comes): its devices are
 * taken, and a restart resumes it.
 */
export const ACTIVE_ROLLOUT_STATES = [
  "scheduled",
  "running",
  "paused",
  "waiting_approval",
] as const satisfies readonly RolloutState[];

/** States a rollout never leaves. */
export const FINAL_ROLLOUT_STATES = [
  "halted",
  "completed",
  "cancelled",
] as const satisfies readonly RolloutState[];

/** A state a rollout never leaves. */
export type FinalRolloutState = typeof FINAL_ROLLOUT_STATES[number];

/** Whether a rollout in `state` is over: it never changes again. */
export function isFinal(state: string): boolean {
  return (FINAL_ROLLOUT_STATES as readonly string[]).includes(state);
}

/** An engine's state: a rollout state, or `created` before `start()`. */
export type EngineState = "created" | RolloutState;

/** The stored and shown state of an engine's state: a created rollout is already `running`. */
export function rolloutStateOf(state: EngineState): RolloutState {
  return state === "created" ? "running" : state;
}

/** The supervisor's finer states behind {@linkcode EngineState}, each a tag of its machine state. */
export const ROLLOUT_PHASES = [
  "idle",
  "dispatching",
  "activating",
  "baking",
  "waiting_approval",
  "paused",
  "halted",
  "completed",
  "cancelled",
] as const;

/** The supervisor's finer state. */
export type RolloutPhase = typeof ROLLOUT_PHASES[number];

/** The engine state of a supervisor phase. */
export function stateOf(phase: RolloutPhase): EngineState {
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

/** The whole vocabulary as JSON, for clients such as the dashboard. */
export const VOCABULARY = {
  waitReasons: WAIT_REASONS,
  deviceStates: DEVICE_STATES,
  rolloutStates: ROLLOUT_STATES,
  activeRolloutStates: ACTIVE_ROLLOUT_STATES,
  finalRolloutStates: FINAL_ROLLOUT_STATES,
  finalDeviceStates: FINAL_DEVICE_STATES,
} as const;
