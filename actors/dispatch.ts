/**
 * Dispatch: starting devices of the current stage (INITIATE) within the concurrency cap and the
 * rate limit, and, in two-phase activation, ACTIVATE-ing the stage's received devices.
 */
import type { Policy } from "../policies/mod.ts";
import type { DeviceTable } from "./device_table.ts";
import type { Flight, Flights } from "./flights.ts";
import type { Clock } from "./ports.ts";
import { RateLimiter } from "./rate_limit.ts";
import type { RolloutMachineEvent, RolloutReport } from "./rollout_machine.ts";
import type { RolloutPhase } from "./states.ts";
import { Queue, queued, queueOf } from "./window_queue.ts";
import type { WindowGate } from "./windows.ts";

/** What a dispatcher works with. */
export interface DispatchOptions {
  policy: Policy;
  devices: readonly string[];
  table: DeviceTable;
  flights: Flights;
  clock: Clock;
  /** Called when the rate limit allows the next start, or a window that devices wait for opens. */
  onRateTimer: () => void;
  /** The policy's maintenance windows, or null. */
  windows: WindowGate | null;
}

/** What one pump may do: whether sends are allowed now, and a fresh token. */
export interface PumpHooks {
  canSend(): boolean;
  token(): Uint8Array;
}

/** The cursors and the rate limit of one rollout. */
export class Dispatcher {
  /** Index of the next device to start; every device before it has started. */
  cursor = 0;
  /** Two-phase activation: index of the next received device to activate. */
  activationCursor = 0;
  rate: RateLimiter | null;
  readonly #options: DispatchOptions;
  #rateTimer: unknown = null;
  #rateTimerAt = Infinity;
  /**
   * Maintenance windows: per window group, devices the cursor passed while their window was
   * closed (they start when it opens), and, with `onClose: hold`, received devices of a two-phase
   * stage whose ACTIVATE waits for it. Both keep list order within a group.
   */
  readonly #waiting = new Map<number, Queue>();
  readonly #activationWaiting = new Map<number, Queue>();
  #windowTimer: unknown = null;
  #windowTimerAt = Infinity;

  constructor(options: DispatchOptions) {
    this.#options = options;
    this.rate = options.policy.rate ? new RateLimiter(options.policy.rate) : null;
  }

  /** Moves the cursors as the supervisor reports a stage starting or activating, or a pause. */
  onReport(type: RolloutReport, stage: number): void {
    const stageStart = this.#options.table.ends[stage - 1] ?? 0;
    if (type === "rollout.stage.started") this.cursor = Math.max(this.cursor, stageStart);
    else if (type === "rollout.stage.activating") this.activationCursor = stageStart;
    else if (type === "rollout.paused") {
      this.clearRateTimer();
      this.clearWindowTimer();
    }
  }

  /** Does the sending work `phase` allows: INITIATEs when dispatching, else ACTIVATEs; true if any. */
  pump(phase: RolloutPhase, stage: number, hooks: PumpHooks): boolean {
    return phase === "dispatching" ? this.#initiate(stage, hooks) : this.#activate(stage, hooks);
  }

  /**
   * Once nothing is in flight: the fact to tell the supervisor if the stage's work is done (all
   * received and waiting for their stage, or all settled), or null.
   */
  stageDone(phase: RolloutPhase, stage: number, at: number): RolloutMachineEvent | null {
    const { table, policy } = this.#options;
    const end = table.ends[stage]!;
    if ((phase === "dispatching" ? this.cursor : this.activationCursor) < end) return null;
    if (queued(phase === "dispatching" ? this.#waiting : this.#activationWaiting) > 0) return null;
    if (
      phase === "dispatching" && policy.activation === "stage" &&
      table.stageCount(stage, "received") > 0
    ) {
      return { type: "rollout.stage.received" };
    }
    // Skipped devices already run the artifact: the stage's success is measured without them.
    const devices = table.stageSize(stage) - table.stageCount(stage, "skipped");
    const activated = table.stageCount(stage, "activated");
    const percent = devices === 0 ? 100 : (activated * 100) / devices;
    const minPercent = policy.success.minPercent;
    return {
      type: "rollout.stage.settled",
      at,
      figures: { stage, devices, activated, percent, minPercent },
    };
  }

  /**
   * Starts devices of `stage` while the concurrency cap and rate limit allow; true if any. With
   * windows, devices whose window opened go first, and the cursor passes those whose window is
   * closed, queueing them by group.
   */
  #initiate(stage: number, hooks: PumpHooks): boolean {
    const { table, flights, policy, clock, windows } = this.#options;
    const end = table.ends[stage]!;
    let started = false;
    const room = () => flights.size < policy.concurrency && hooks.canSend();
    for (const [group, queue] of this.#waiting) {
      while (queue.size > 0 && room() && windows!.groupOpen(group, clock.now())) {
        if (!this.#take()) return started;
        this.#start(queue.shift(), hooks);
        started = true;
      }
      if (queue.size === 0) this.#waiting.delete(group);
    }
    while (this.cursor < end && room()) {
      if (table.state(this.cursor) === "skipped") {
        this.cursor++;
        continue;
      }
      if (windows && !windows.isOpen(this.cursor, clock.now())) {
        queueOf(this.#waiting, windows.group(this.cursor)).push(this.cursor++);
        continue;
      }
      if (!this.#take()) break;
      this.#start(this.cursor++, hooks);
      started = true;
    }
    this.#armWindows(this.#waiting);
    return started;
  }

  /** Takes one start from the rate limit; false (and a timer armed) when it allows none now. */
  #take(): boolean {
    if (!this.rate) return true;
    const { clock, table } = this.#options;
    const now = clock.now();
    if (!this.rate.allows(now)) {
      this.#armRate(this.rate.next!);
      return false;
    }
    this.rate.take(now, { notified: this.#notified() + 1, succeeded: table.count("activated") });
    return true;
  }

  /** Devices started so far (the cursor, less those it passed that wait for their window). */
  #notified(): number {
    return this.cursor - queued(this.#waiting);
  }

  #start(index: number, hooks: PumpHooks): void {
    const { flights, devices } = this.#options;
    const flight = flights.open(devices[index]!, index, null);
    flight.actor.send({ type: "device.initiate", token: hooks.token() });
  }

  /** Under `hold`: received devices of window group `group` whose ACTIVATE waits for it. */
  activationsWaiting(group: number): number {
    return this.#activationWaiting.get(group)?.size ?? 0;
  }

  /**
   * Whether device `index` waits in a window queue: pending though the cursor passed it, or, under
   * `hold`, received though the activation cursor of its stage passed it.
   */
  queued(index: number, phase: RolloutPhase, stage: number): boolean {
    const { windows, table } = this.#options;
    if (!windows) return false;
    const state = table.state(index);
    if (state === "pending") return index < this.cursor;
    return state === "received" && windows.holdsActivate && phase === "activating" &&
      index >= (table.ends[stage - 1] ?? 0) && index < this.activationCursor &&
      !this.#options.flights.get(this.#options.devices[index]!);
  }

  /** After a restore: devices before the cursor that never started wait for their window again. */
  requeue(): void {
    const { windows, table } = this.#options;
    if (!windows) return;
    for (let index = 0; index < this.cursor; index++) {
      if (table.state(index) === "pending") {
        queueOf(this.#waiting, windows.group(index)).push(index);
      }
    }
  }

  /**
   * Two-phase activation: ACTIVATE the stage's received devices, within the concurrency cap. With
   * `onClose: hold`, a device whose window is closed waits in its group's queue.
   */
  #activate(stage: number, hooks: PumpHooks): boolean {
    const { table, flights, policy, clock } = this.#options;
    const windows = this.#options.windows?.holdsActivate ? this.#options.windows : null;
    const end = table.ends[stage]!;
    let sent = false;
    const room = () => flights.size < policy.concurrency && hooks.canSend();
    for (const [group, queue] of this.#activationWaiting) {
      while (queue.size > 0 && room() && windows!.groupOpen(group, clock.now())) {
        const index = queue.shift();
        if (table.state(index) !== "received") continue;
        this.#activateOne(index);
        sent = true;
      }
      if (queue.size === 0) this.#activationWaiting.delete(group);
    }
    while (this.activationCursor < end && room()) {
      const index = this.activationCursor++;
      if (table.state(index) !== "received") continue;
      if (windows && !windows.isOpen(index, clock.now())) {
        queueOf(this.#activationWaiting, windows.group(index)).push(index);
        continue;
      }
      this.#activateOne(index);
      sent = true;
    }
    this.#armWindows(this.#activationWaiting);
    return sent;
  }

  #activateOne(index: number): void {
    const { table, flights, devices } = this.#options;
    const flight: Flight = flights.open(
      devices[index]!,
      index,
      table.record(devices[index]!, index, null),
    );
    flight.actor.send({ type: "device.activate" });
  }

  /** Arms one timer for the earliest opening of a group that devices in `queues` wait for. */
  #armWindows(queues: Map<number, Queue>): void {
    const { windows, clock, onRateTimer } = this.#options;
    if (!windows || queues.size === 0) return;
    const now = clock.now();
    let at = Infinity;
    for (const group of queues.keys()) {
      const open = windows.groupNextOpen(group, now);
      if (open !== null && open > now) at = Math.min(at, open);
    }
    if (at === Infinity || (this.#windowTimer !== null && this.#windowTimerAt <= at)) return;
    this.clearWindowTimer();
    this.#windowTimerAt = at;
    // A JavaScript timer holds at most ~24.8 days: a later opening is reached in steps.
    this.#windowTimer = clock.setTimeout(() => {
      this.#windowTimer = null;
      this.#windowTimerAt = Infinity;
      onRateTimer();
    }, Math.min(MAX_TIMER_MS, at - now));
  }

  clearWindowTimer(): void {
    if (this.#windowTimer !== null) this.#options.clock.clearTimeout(this.#windowTimer);
    this.#windowTimer = null;
    this.#windowTimerAt = Infinity;
  }

  #armRate(at: number): void {
    if (this.#rateTimer !== null && this.#rateTimerAt <= at) return;
    this.clearRateTimer();
    const { clock, onRateTimer } = this.#options;
    this.#rateTimerAt = at;
    this.#rateTimer = clock.setTimeout(() => {
      this.#rateTimer = null;
      this.#rateTimerAt = Infinity;
      onRateTimer();
    }, Math.max(0, at - clock.now()));
  }

  clearRateTimer(): void {
    if (this.#rateTimer !== null) this.#options.clock.clearTimeout(this.#rateTimer);
    this.#rateTimer = null;
    this.#rateTimerAt = Infinity;
  }
}

/** The longest delay a JavaScript timer can wait. */
const MAX_TIMER_MS = 2 ** 31 - 1;
