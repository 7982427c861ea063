/**
 * The in-flight table: one device actor per device that holds a concurrency slot, with its one
 * pending timer. A device is in flight from its INITIATE (or ACTIVATE) until it finishes or parks.
 */
import { type Actor, createActor } from "xstate";
import type { DeviceEvent, deviceMachine, RetryRule } from "./device_machine.ts";
import type { DeviceTable } from "./device_table.ts";
import type { Clock } from "./ports.ts";
import type { DeviceRecord } from "./snapshot.ts";
import type { WindowGate } from "./windows.ts";

type DeviceLogic = typeof deviceMachine;

/** A device in flight: its actor and its one pending timer. */
export interface Flight {
  id: string;
  index: number;
  actor: Actor<DeviceLogic>;
  /** Hex of earlier tokens, so a late 0xFF for one of them still halts. */
  previous: string[];
  timer: unknown;
  deadline: number | null;
  /** Finished, or parked until its stage activates: stopped at the next `reap()`. */
  done: boolean;
  /** Its timer waits for its maintenance window to open (a retry, or an ACTIVATE under `hold`). */
  window: boolean;
}

/** What the in-flight table needs. */
export interface FlightsOptions {
  retry: RetryRule;
  clock: Clock;
  table: DeviceTable;
  /** The engine's settle loop, run after a timer fired. */
  settle: () => void;
  /** The policy's maintenance windows, or null. */
  windows: WindowGate | null;
}

/** The devices in flight of one rollout. */
export class Flights {
  readonly #logic: DeviceLogic;
  readonly #retry: RetryRule;
  readonly #clock: Clock;
  readonly #table: DeviceTable;
  readonly #settle: () => void;
  readonly #windows: WindowGate | null;
  readonly #flights = new Map<string, Flight>();
  /** Flights waiting for their window, per window group. */
  readonly #windowWaits = new Map<number, number>();
  #finished: Flight[] = [];
  /** Flights whose next send waits for the rollout to allow it (a retry, an ACTIVATE). */
  readonly held = new Set<Flight>();

  constructor(logic: DeviceLogic, options: FlightsOptions) {
    this.#logic = logic;
    this.#retry = options.retry;
    this.#clock = options.clock;
    this.#table = options.table;
    this.#settle = options.settle;
    this.#windows = options.windows;
  }

  /** Devices holding a slot, finished ones not yet reaped included. */
  get size(): number {
    return this.#flights.size;
  }

  /** The flight of a device, finished or not. */
  get(id: string): Flight | undefined {
    return this.#flights.get(id);
  }

  /** The live flight of a device (not finished or parked), or undefined. */
  live(id: string): Flight | undefined {
    const flight = this.#flights.get(id);
    return flight && !flight.done ? flight : undefined;
  }

  values(): IterableIterator<Flight> {
    return this.#flights.values();
  }

  /** Starts the actor of a device now in flight: fresh, or in the state of `record`. */
  open(id: string, index: number, record: DeviceRecord | null): Flight {
    const logic = this.#logic;
    const input = { id, retry: this.#retry };
    const actor = record
      ? createActor(logic, {
        input,
        snapshot: logic.resolveState({
          value: record.state,
          context: {
            id,
            token: record.token,
            attempt: record.attempt,
            // Not in the flat record: a restored device gets its full count of ACTIVATE retries.
            activations: 1,
            retry: this.#retry,
          },
        }),
      })
      : createActor(logic, { input });
    const flight: Flight = {
      id,
      index,
      actor,
      previous: [],
      timer: null,
      deadline: record?.deadline ?? null,
      done: false,
      window: false,
    };
    this.#flights.set(id, flight);
    actor.start();
    return flight;
  }

  arm(flight: Flight, deadline: number): void {
    this.disarm(flight);
    flight.deadline = deadline;
    flight.timer = this.#clock.setTimeout(() => {
      flight.timer = null;
      if (!flight.done) this.#onDeadline(flight);
    }, Math.max(0, deadline - this.#clock.now()));
  }

  /**
   * Waits for the device's window to open at `at` (null: it never opens, so no timer): the flight
   * keeps its slot and counts as waiting for its window.
   */
  armWindow(flight: Flight, at: number | null): void {
    this.disarm(flight);
    flight.deadline = at;
    flight.window = true;
    const group = this.#windows!.group(flight.index);
    this.#windowWaits.set(group, (this.#windowWaits.get(group) ?? 0) + 1);
    if (at === null) return;
    // A JavaScript timer holds at most ~24.8 days: a later opening is reached in steps.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.#clock.now()));
    flight.timer = this.#clock.setTimeout(() => {
      flight.timer = null;
      if (flight.done) return;
      if (this.#clock.now() < at) return this.armWindow(flight, at);
      this.#endWindowWait(flight);
      this.#onDeadline(flight);
    }, delay);
  }

  /** Flights waiting for their window in group `group`, or in every group. */
  waitingForWindow(group?: number): number {
    if (group !== undefined) return this.#windowWaits.get(group) ?? 0;
    let n = 0;
    for (const count of this.#windowWaits.values()) n += count;
    return n;
  }

  /** Re-arms every restored deadline; a retry whose window is closed waits for it again. */
  rearm(): void {
    const windows = this.#windows;
    const now = this.#clock.now();
    for (const flight of this.#flights.values()) {
      if (flight.deadline === null) continue;
      if (
        windows && this.#table.state(flight.index) === "retrying" &&
        !windows.isOpen(flight.index, Math.max(now, flight.deadline))
      ) {
        this.armWindow(flight, windows.nextOpen(flight.index, Math.max(now, flight.deadline)));
      } else {
        this.arm(flight, flight.deadline);
      }
    }
  }

  /** Sends a device actor an event; true when the device changed state. */
  deliver(flight: Flight, event: DeviceEvent): boolean {
    const before = flight.actor.getSnapshot();
    flight.actor.send(event);
    return flight.actor.getSnapshot() !== before;
  }

  /** A held device may go on: a retry's INITIATE with a fresh token, or an ACTIVATE. */
  release(flight: Flight, token: () => Uint8Array): void {
    if (flight.done) return;
    const state = this.#table.state(flight.index);
    if (state === "retrying") flight.actor.send({ type: "device.initiate", token: token() });
    else if (state === "received") flight.actor.send({ type: "device.activate" });
  }

  #onDeadline(flight: Flight): void {
    const state = this.#table.state(flight.index);
    const windows = this.#windows;
    if (state === "retrying" || state === "received") {
      // The backoff is over (or the window opened); the send goes now, or when the rollout allows.
      this.held.add(flight);
    } else if (
      state === "activating" && windows?.holdsActivate &&
      !windows.isOpen(flight.index, this.#clock.now())
    ) {
      // `hold`: the ACTIVATE goes again only once the window is open.
      this.armWindow(flight, windows.nextOpen(flight.index, this.#clock.now()));
    } else {
      this.deliver(flight, { type: "device.timeout" });
    }
    this.#settle();
  }

  disarm(flight: Flight): void {
    if (flight.timer !== null) this.#clock.clearTimeout(flight.timer);
    flight.timer = null;
    flight.deadline = null;
    this.#endWindowWait(flight);
  }

  #endWindowWait(flight: Flight): void {
    if (!flight.window) return;
    flight.window = false;
    const group = this.#windows!.group(flight.index);
    this.#windowWaits.set(group, this.#windowWaits.get(group)! - 1);
  }

  /** Marks a device finished (or parked): its actor is stopped at the next `reap()`. */
  finish(flight: Flight): void {
    flight.done = true;
    this.#finished.push(flight);
  }

  /** Stops the actors of finished and parked devices and frees their slots. */
  reap(): void {
    if (this.#finished.length === 0) return;
    for (const flight of this.#finished) {
      this.disarm(flight);
      this.held.delete(flight);
      flight.actor.stop();
      this.#flights.delete(flight.id);
    }
    this.#finished = [];
  }

  /** Sends every live device `device.cancel`; false when none is in flight. */
  cancelAll(): boolean {
    this.held.clear();
    if (this.#flights.size === 0) return false;
    for (const flight of this.#flights.values()) {
      if (!flight.done) flight.actor.send({ type: "device.cancel" });
    }
    return true;
  }

  /** Stops every timer and actor without a transition, as a process exit would. */
  stopAll(): void {
    for (const flight of this.#flights.values()) {
      this.disarm(flight);
      flight.actor.stop();
    }
    this.#flights.clear();
    this.held.clear();
    this.#windowWaits.clear();
    this.#finished = [];
  }
}

/** The longest delay a JavaScript timer can wait. */
const MAX_TIMER_MS = 2 ** 31 - 1;
