/**
 * What happens when a device actor enters a state: the device table records it, its timer is armed
 * (response, activation or backoff), its event is emitted, and it finishes, parks or waits.
 */
import type { Policy } from "../policies/mod.ts";
import { statusName, toHex } from "../srup/mod.ts";
import { backoffDelay } from "./backoff.ts";
import type { DeviceEvent } from "./device_machine.ts";
import type { DeviceTable } from "./device_table.ts";
import type { DeviceEventBase, DeviceRolloutEvent } from "./events.ts";
import type { Flight, Flights } from "./flights.ts";
import type { Clock } from "./ports.ts";
import { stageOf } from "./stages.ts";
import type { DeviceState } from "./states.ts";
import type { WindowGate } from "./windows.ts";

/** What reactions need from the engine. */
export interface ReactionOptions {
  id: string;
  policy: Policy;
  table: DeviceTable;
  flights: Flights;
  clock: Clock;
  random: () => number;
  emit(event: DeviceRolloutEvent): void;
  /** Sends an ACTIVATE (the port). */
  activate(device: string, token: Uint8Array): void;
  /** Whether the device at `index`, which just reported 0x00, gets its ACTIVATE at once. */
  activatesNow(index: number): boolean;
  /** Whether a received device parks until its stage activates (two-phase, not activating yet). */
  waitsForStage(): boolean;
  /** The policy's maintenance windows, or null. */
  windows: WindowGate | null;
}

/** One state entered by a device actor. */
export interface Entered {
  state: DeviceState;
  /** The actor's INITIATE attempts so far. */
  attempt: number;
  /** The event that caused it. */
  event: DeviceEvent;
}

/** Reacts to a device entering `entered.state`. */
export function enterState(flight: Flight, entered: Entered, options: ReactionOptions): void {
  const { table, flights, policy } = options;
  const { state, event } = entered;
  const index = flight.index;
  const from = table.state(index);
  const status = event.type === "device.response" ? event.status : table.lastStatus(index);
  table.set(index, state, entered.attempt, status);
  flights.disarm(flight);
  const now = options.clock.now();
  const arm = (ms: number) => {
    flights.arm(flight, now + ms);
    return now + ms;
  };
  if (state === "initiated" && event.type === "device.initiate") {
    if (from !== "pending") flight.previous.push(toHex(table.token(index)));
    table.setToken(index, event.token);
  }
  const base = eventBase(flight, options);
  switch (state) {
    case "initiated":
      options.emit({ type: "device.initiated", ...base, deadline: arm(policy.timeouts.response) });
      break;
    case "received":
      options.emit({ type: "device.received", ...base, status });
      if (options.activatesNow(index)) break;
      // Two-phase: the device waits for its stage without an actor or a slot.
      if (options.waitsForStage()) flights.finish(flight);
      else flights.held.add(flight);
      break;
    case "activating":
      options.emit({
        type: "device.activating",
        ...base,
        deadline: arm(policy.timeouts.activation),
      });
      break;
    case "timed_out":
      options.emit({
        type: "device.timed_out",
        ...base,
        missing: from === "activating" ? "activation" : "response",
      });
      break;
    case "retrying": {
      let deadline = now + backoffDelay(policy.retry, entered.attempt, options.random);
      // A retry is a new INITIATE: one whose backoff ends outside the window waits for it to open.
      const opens = options.windows ? options.windows.nextOpen(index, deadline) : deadline;
      if (opens === deadline) flights.arm(flight, deadline);
      else {
        flights.armWindow(flight, opens);
        deadline = opens ?? deadline;
      }
      options.emit({ type: "device.retrying", ...base, status, reason: reasonOf(event), deadline });
      break;
    }
    case "activated":
      options.emit({ type: "device.activated", ...base, status });
      flights.finish(flight);
      break;
    case "failed":
      options.emit({ type: "device.failed", ...base, status, reason: reasonOf(event) });
      flights.finish(flight);
      break;
    case "cancelled":
      options.emit({ type: "device.cancelled", ...base, from });
      flights.finish(flight);
      break;
  }
}

/**
 * After a restore: sends ACTIVATE again, with the same token, to every device whose confirmation
 * was never recorded, and restarts its activation timeout. Returns how many were sent.
 */
export function resendPendingActivations(options: ReactionOptions): number {
  const { table, flights } = options;
  let sent = 0;
  for (const flight of flights.values()) {
    if (flight.done || table.state(flight.index) !== "activating") continue;
    // `hold`: outside its window, its timer (or the window's opening) sends it again.
    if (
      options.windows?.holdsActivate && !options.windows.isOpen(flight.index, options.clock.now())
    ) {
      continue;
    }
    const deadline = options.clock.now() + options.policy.timeouts.activation;
    flights.arm(flight, deadline);
    const base = eventBase(flight, options);
    options.emit({ type: "device.activating", ...base, deadline, resent: true });
    options.activate(flight.id, table.token(flight.index).slice());
    sent++;
  }
  return sent;
}

function eventBase(flight: Flight, options: ReactionOptions): DeviceEventBase {
  const { table } = options;
  return {
    rollout: options.id,
    at: options.clock.now(),
    device: flight.id,
    stage: stageOf(table.ends, flight.index),
    token: toHex(table.token(flight.index)),
    attempt: table.attempt(flight.index),
  };
}

function reasonOf(event: DeviceEvent): string | undefined {
  if (event.type === "device.timeout") return "timeout";
  return event.type === "device.response" ? statusName(event.status) : undefined;
}
