/** What the engine is given (a clock) and what it calls (ports): the seams to the live world. */
import type { RolloutEvent } from "./events.ts";

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
