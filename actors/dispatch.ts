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

/** What a dispatcher works with. */
export interface DispatchOptions {
  policy: Policy;
  devices: readonly string[];
  table: DeviceTable;
  flights: Flights;
  clock: Clock;
  /** Called when the rate limit allows the next start. */
  onRateTimer: () => void;
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

  constructor(options: DispatchOptions) {
    this.#options = options;
    this.rate = options.policy.rate ? new RateLimiter(options.policy.rate) : null;
  }

  /** Moves the cursors as the supervisor reports a stage starting or activating, or a pause. */
  onReport(type: RolloutReport, stage: number): void {
    const stageStart = this.#options.table.ends[stage - 1] ?? 0;
    if (type === "rollout.stage.started") this.cursor = Math.max(this.cursor, stageStart);
    else if (type === "rollout.stage.activating") this.activationCursor = stageStart;
    else if (type === "rollout.paused") this.clearRateTimer();
  }

  /**
   * Does the sending work `phase` allows: INITIATEs when dispatching, else ACTIVATEs (and
   * INITIATEs to devices that joined the stage since it dispatched); true if any.
   */
  pump(phase: RolloutPhase, stage: number, hooks: PumpHooks): boolean {
    if (phase === "dispatching") return this.#initiate(stage, hooks);
    return this.#activate(stage, hooks) || this.#initiate(stage, hooks);
  }

  /**
   * Once nothing is in flight: the fact to tell the supervisor if the stage's work is done (all
   * received and waiting for their stage, or all settled), or null.
   */
  stageDone(phase: RolloutPhase, stage: number, at: number): RolloutMachineEvent | null {
    const { table, policy } = this.#options;
    const end = table.ends[stage]!;
    if (this.cursor < end || (phase === "activating" && this.activationCursor < end)) return null;
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

  /** Starts devices of `stage` while the concurrency cap and rate limit allow; true if any. */
  #initiate(stage: number, hooks: PumpHooks): boolean {
    const { table, flights, policy, clock, devices } = this.#options;
    const end = table.ends[stage]!;
    let started = false;
    while (this.cursor < end && flights.size < policy.concurrency && hooks.canSend()) {
      if (table.state(this.cursor) === "skipped") {
        this.cursor++;
        continue;
      }
      if (this.rate) {
        const now = clock.now();
        if (!this.rate.allows(now)) {
          this.#armRate(this.rate.next!);
          break;
        }
        this.rate.take(now, { notified: this.cursor + 1, succeeded: table.count("activated") });
      }
      const index = this.cursor++;
      const flight = flights.open(devices[index]!, index, null);
      flight.actor.send({ type: "device.initiate", token: hooks.token() });
      started = true;
    }
    return started;
  }

  /** Two-phase activation: ACTIVATE the stage's received devices, within the concurrency cap. */
  #activate(stage: number, hooks: PumpHooks): boolean {
    const { table, flights, policy, devices } = this.#options;
    const end = table.ends[stage]!;
    let sent = false;
    while (
      this.activationCursor < end && flights.size < policy.concurrency && hooks.canSend()
    ) {
      const index = this.activationCursor++;
      if (table.state(index) !== "received") continue;
      const flight: Flight = flights.open(
        devices[index]!,
        index,
        table.record(devices[index]!, index, null),
      );
      flight.actor.send({ type: "device.activate" });
      sent = true;
    }
    return sent;
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
