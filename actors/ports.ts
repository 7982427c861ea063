/** What the engine is given (a clock) and what it calls (ports): the seams to the live world. */
import type { DeviceState } from "./device_state.ts";
import type { HaltReason, PauseReason } from "./reasons.ts";
import type { RolloutReport } from "./rollout_machine.ts";

/**
 * Time, injected. Compatible with XState's `Clock`: live code passes real timers and `Date.now`,
 * the simulator a simulated clock. Timer ids are opaque.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/**
 * Where the engine's decisions go. Every call is synchronous, must not throw, and must not call
 * back into the engine synchronously; the live layer queues the work (for example until an event is
 * durable) and handles its own failures.
 */
export interface RolloutPorts {
  /** Send a signed INITIATE with this brand-new token (attempt 1 is the first). */
  initiate(device: string, token: Uint8Array, attempt: number): void;
  /** Send a signed ACTIVATE for the token whose RESPONSE 0x00 was received. */
  activate(device: string, token: Uint8Array): void;
  /** Record or stream one event; every transition produces one. */
  event(event: RolloutEvent): void;
}

/** Every event type the engine emits. */
export type RolloutEventType =
  | RolloutReport
  | "rollout.restored"
  | "device.initiated"
  | "device.received"
  | "device.activating"
  | "device.activated"
  | "device.retrying"
  | "device.timed_out"
  | "device.failed"
  | "device.cancelled";

/** One event: plain JSON (tokens as hex), enough to rebuild per-device rows from the stream. */
export interface RolloutEvent {
  type: RolloutEventType;
  rollout: string;
  /** Clock time in milliseconds. */
  at: number;
  device?: string;
  /** The stage index the device belongs to, or the rollout's current stage. */
  stage?: number;
  /** Hex of the token the event concerns. */
  token?: string;
  attempt?: number;
  /** The RESPONSE status that caused this event, if any. */
  status?: number | null;
  /** Why a device failed or is retrying: a status name such as `UPDATE_FAIL_SERVER`, or `timeout`. */
  reason?: string;
  /** Clock time the device's current wait ends (response, activation or backoff). */
  deadline?: number;
  /** For `device.timed_out`: which answer was missing. */
  phase?: "response" | "activation";
  /** For `device.cancelled`: the state the device was in. */
  from?: DeviceState;
  /** For `device.activating`: an ACTIVATE re-sent after a restore. */
  resent?: boolean;
  pauseReason?: PauseReason;
  haltReason?: HaltReason;
  /** Figures of a stage or of the rollout (`rollout.started`, `rollout.stage.*`). */
  figures?: Record<string, unknown>;
}
