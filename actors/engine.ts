/**
 * The rollout engine: one supervisor actor, one device actor per device in flight, compact arrays
 * for the rest of the fleet. Clock, ports (transport and event log), randomness and tokens are
 * injected, so the same engine runs live and in simulated time. See docs/engine.md.
 */
import { equalBytes, toHex, UPDATE_FAIL_DIGEST } from "../srup/mod.ts";
import type { Policy } from "../policies/mod.ts";
import { assemble, type Assembled, type RolloutEngineOptions } from "./assemble.ts";
import { resendPendingActivations } from "./device_reactions.ts";
import type { DeviceTable } from "./device_table.ts";
import type { Dispatcher, PumpHooks } from "./dispatch.ts";
import { RolloutCommandError } from "./errors.ts";
import type { Flights } from "./flights.ts";
import type { HaltReason } from "./reasons.ts";
import { takeSnapshot } from "./restore.ts";
import type { RolloutContext, RolloutMachineEvent, RolloutReport } from "./rollout_machine.ts";
import { checkSnapshot, type IgnoredCounts, type RolloutSnapshot } from "./snapshot.ts";
import { stageOf } from "./stages.ts";
import { type DeviceState, type EngineState, type RolloutPhase, stateOf } from "./states.ts";
import { type RolloutSummary, summarize, windowSummary } from "./summary.ts";
import { reportEvent, type Supervisor } from "./supervisor.ts";
import { thresholdBreach, type ThresholdCounts, thresholdCounts } from "./threshold.ts";

export type { RolloutEngineOptions };

/** What became of one RESPONSE handed to the engine's `response()`. */
export type ResponseOutcome = "accepted" | "stale_token" | "not_in_flight" | "unexpected";

/** Creates a rollout engine; call `start()` to begin (or to resume a restored one). */
export function createRolloutEngine(options: RolloutEngineOptions): RolloutEngine {
  return new RolloutEngine(options);
}

/** One rollout. Inputs: `response()` and the commands. Outputs: the ports. */
export class RolloutEngine {
  readonly id: string;
  readonly policy: Policy;
  readonly #parts: Assembled;
  readonly #table: DeviceTable;
  readonly #supervisor: Supervisor;
  readonly #flights: Flights;
  readonly #dispatch: Dispatcher;
  readonly #pumpHooks: PumpHooks = {
    canSend: () => this.#canSend(),
    token: () => this.#parts.token(),
  };
  /** A digest mismatch seen and not yet handed to the supervisor: from now on nothing is sent. */
  #halt: HaltReason | null = null;
  #thresholdBase: ThresholdCounts = { failed: 0, ok: 0 };
  #ignored: IgnoredCounts = { staleToken: 0, notInFlight: 0, unexpected: 0 };
  #started = false;
  #restoring: RolloutSnapshot | null;
  #settling = false;

  constructor(options: RolloutEngineOptions) {
    this.id = options.id;
    this.policy = options.policy;
    this.#restoring = options.snapshot ? checkSnapshot(options.snapshot) : null;
    this.#parts = assemble(options, {
      activatesNow: (index) => this.#activatesNow(index),
      onReport: (type, context) => this.#onRollout(type, context),
      settle: () => this.#settle(),
      restoring: this.#restoring,
    });
    ({ table: this.#table, flights: this.#flights, dispatch: this.#dispatch } = this.#parts);
    this.#supervisor = this.#parts.supervisor;
    if (this.#restoring) {
      this.#thresholdBase = { ...this.#restoring.thresholdBase };
      this.#ignored = { ...this.#restoring.ignored };
    }
  }

  /** The rollout's state: `created`, `running`, `paused`, `waiting_approval`, `halted`, … */
  get state(): EngineState {
    return stateOf(this.#supervisor.phase);
  }

  /** The supervisor's finer state: `dispatching`, `activating`, `baking`, … */
  get phase(): RolloutPhase {
    return this.#supervisor.phase;
  }

  /** Starts the rollout, or resumes a restored one (re-arming its timers). */
  start(): void {
    if (this.#started) throw new RolloutCommandError("already_started", "start", this.state);
    this.#started = true;
    const restored = this.#restoring;
    this.#restoring = null;
    if (restored) {
      this.#flights.rearm();
      if (this.phase === "baking") this.#supervisor.armBake();
      this.#parts.ports.event({
        type: "rollout.restored",
        rollout: this.id,
        at: this.#parts.clock.now(),
        stage: this.#supervisor.context.stage,
        figures: { from: restored.at },
      });
    } else {
      this.#supervisor.send({ type: "rollout.start" });
    }
    this.#settle();
  }

  /**
   * Hands the engine one verified RESPONSE. Stale tokens, devices not in flight and statuses the
   * device's state does not expect are ignored and counted, never thrown.
   */
  response(device: string, token: Uint8Array, status: number): ResponseOutcome {
    const flight = this.#flights.live(device);
    if (!flight) {
      this.#ignored.notInFlight++;
      return "not_in_flight";
    }
    const current = equalBytes(token, this.#table.token(flight.index));
    // A digest mismatch on an earlier attempt still means the file is bad: it halts too.
    if (!current && !(status === UPDATE_FAIL_DIGEST && flight.previous.includes(toHex(token)))) {
      this.#ignored.staleToken++;
      return "stale_token";
    }
    if (!this.#flights.deliver(flight, { type: "device.response", status })) {
      this.#settle();
      this.#ignored.unexpected++;
      return "unexpected";
    }
    // [SRUP-3] The device failed on 0xFF (whatever its state): the file is not what we signed.
    if (status === UPDATE_FAIL_DIGEST) {
      this.#halt ??= {
        kind: "digest_mismatch",
        device,
        status,
        token: toHex(token),
        stage: stageOf(this.#table.ends, flight.index),
      };
    }
    this.#settle();
    return "accepted";
  }

  /**
   * Whether this rollout issued `token` to the device at `index` (its position in `devices`): its
   * latest token, or an earlier attempt's while it is in flight. False for a device never started.
   */
  issued(device: string, index: number, token: Uint8Array): boolean {
    if (this.#table.attempt(index) > 0 && equalBytes(token, this.#table.token(index))) return true;
    return this.#flights.live(device)?.previous.includes(toHex(token)) ?? false;
  }

  /** Ids of the devices now in `state`, in rollout order (say, those a rollback would restore). */
  devicesIn(state: DeviceState): string[] {
    const ids: string[] = [];
    for (let index = 0; index < this.#parts.devices.length; index++) {
      if (this.#table.state(index) === state) ids.push(this.#parts.devices[index]!);
    }
    return ids;
  }

  /** Whether a send the engine asked for is still wanted (the live layer asks before publishing). */
  shouldSend(device: string, token: Uint8Array): boolean {
    const flight = this.#flights.live(device);
    if (!flight || this.#halt || this.#supervisor.over) return false;
    const state = this.#table.state(flight.index);
    return (state === "initiated" || state === "activating") &&
      equalBytes(token, this.#table.token(flight.index));
  }

  /**
   * After a restore: sends ACTIVATE again, with the same token, to every device whose confirmation
   * was never recorded, and restarts its activation timeout. Returns how many were sent.
   */
  resendPendingActivations(): number {
    return this.#canSend() ? resendPendingActivations(this.#parts.reactions) : 0;
  }

  /**
   * Whether a device can still join (dynamic targets): the rollout is not over and its last stage
   * has not finished dispatching (baking, waiting for approval, or paused in either).
   */
  get joinable(): boolean {
    const supervisor = this.#supervisor;
    if (supervisor.over || this.#halt) return false;
    if (supervisor.context.stage < this.policy.stages.length - 1) return true;
    const phase = supervisor.resumesTo ?? this.phase;
    return phase !== "baking" && phase !== "waiting_approval";
  }

  /**
   * Adds a device that came to match the targets to the last stage (`skipped`: it already runs
   * the artifact); it is started when that stage dispatches, at once if it does now. Its index.
   * With windows per tag value, `windowGroup` is its group (default 0, the only group otherwise).
   * RolloutCommandError when not {@linkcode joinable}; RangeError for a device already in it.
   */
  join(device: string, options: { skipped?: boolean; windowGroup?: number } = {}): number {
    if (!this.joinable) throw new RolloutCommandError("finished", "join", this.state);
    if (typeof device !== "string" || device === "") {
      throw new TypeError(`Expected a non-empty device id: got ${String(device)}`);
    }
    if (this.#parts.devices.includes(device)) {
      throw new RangeError(`Cannot join device "${device}": it is in the rollout already`);
    }
    const group = options.windowGroup ?? 0;
    this.#parts.windows?.append(group);
    const index = this.#table.append(options.skipped ? "skipped" : "pending", group);
    this.#parts.devices.push(device);
    if (this.#started) this.#settle();
    return index;
  }

  /** Stops new work (new devices, retries, ACTIVATEs) until `resume()`. */
  pause(): void {
    if (!this.#supervisor.active) this.#refuse("not_running", "pause");
    this.#command({ type: "rollout.pause" }, "pause");
  }

  /** Resumes a paused rollout; after a threshold pause, the threshold counts from here. */
  resume(): void {
    if (this.phase !== "paused") this.#refuse("not_paused", "resume");
    if (this.#supervisor.context.pauseReason?.kind === "failure_threshold") {
      this.#thresholdBase = thresholdCounts(this.policy, this.#scope);
    }
    this.#command({ type: "rollout.resume" }, "resume");
  }

  /** Grants the manual approval the current stage waits for. */
  promote(): void {
    if (this.phase !== "waiting_approval") this.#refuse("not_waiting_approval", "promote");
    this.#command({ type: "rollout.promote" }, "promote");
  }

  /** Stops all work for good; devices keep whatever they run now. */
  cancel(): void {
    if (this.#supervisor.over) this.#refuse("finished", "cancel");
    this.#command({ type: "rollout.cancel" }, "cancel");
  }

  /**
   * Stops every timer and actor without changing the rollout or emitting anything, as a process
   * exit would; take a snapshot first to restore the rollout elsewhere. The engine is unusable after.
   */
  stop(): void {
    this.#dispatch.clearRateTimer();
    this.#dispatch.clearWindowTimer();
    this.#flights.stopAll();
    this.#supervisor.stop();
  }

  /** A cheap summary: state, stage figures, counts, reasons, attempts histogram. */
  summary(): RolloutSummary {
    const haltReason = this.#supervisor.context.haltReason ?? this.#halt;
    return summarize(this.#parts, {
      state: this.state,
      haltReason,
      ignored: { ...this.#ignored },
      windows: this.#parts.windows
        ? windowSummary(this.#parts, this.#parts.windows, this.#parts.clock.now())
        : null,
    });
  }

  /**
   * Whether device `device` waits for its maintenance window: not started though its stage has
   * begun, a retry or (under `hold`) an ACTIVATE deferred to the next opening. False without windows.
   */
  waitingForWindow(device: string, index: number): boolean {
    const windows = this.#parts.windows;
    if (!windows || this.#supervisor.over) return false;
    const flight = this.#flights.live(device);
    if (flight) return flight.window;
    const stage = this.#supervisor.context.stage;
    if (this.#dispatch.queued(index, this.phase, stage)) return true;
    return this.#table.state(index) === "pending" &&
      stageOf(this.#table.ends, index) <= stage &&
      !windows.isOpen(index, this.#parts.clock.now());
  }

  /** The whole rollout as plain JSON; restore it with `createRolloutEngine({ snapshot })`. */
  snapshot(options: { devices?: boolean } = {}): RolloutSnapshot {
    return takeSnapshot(this.#parts, {
      at: this.#parts.clock.now(),
      thresholdBase: this.#thresholdBase,
      ignored: this.#ignored,
      devices: options.devices !== false,
    });
  }

  #refuse(code: ConstructorParameters<typeof RolloutCommandError>[0], command: string): never {
    if (!this.#started) throw new RolloutCommandError("not_started", command, this.state);
    throw new RolloutCommandError(code, command, this.state);
  }

  #command(event: RolloutMachineEvent, command: string): void {
    if (!this.#started) this.#refuse("not_started", command);
    this.#supervisor.send(event);
    this.#settle();
  }

  /** Whether the device at `index`, which just reported 0x00, gets its ACTIVATE at once. */
  #activatesNow(index: number): boolean {
    return this.#canSend() &&
      (this.policy.activation === "immediate" || this.phase === "activating") &&
      !this.#windowClosed(index, "received");
  }

  /**
   * Whether a send of device `index` in `state` must wait for its window: a retry's INITIATE
   * always does, an ACTIVATE under `onClose: hold`.
   */
  #windowClosed(index: number, state: string): boolean {
    const windows = this.#parts.windows;
    if (!windows || (state !== "retrying" && !(state === "received" && windows.holdsActivate))) {
      return false;
    }
    return !windows.isOpen(index, this.#parts.clock.now());
  }

  /** Whether the engine may send an INITIATE or ACTIVATE now. */
  #canSend(): boolean {
    return this.#halt === null && this.#supervisor.sending;
  }

  get #scope(): { table: DeviceTable; stage: number } {
    return { table: this.#table, stage: this.#supervisor.context.stage };
  }

  #onRollout(type: RolloutReport, context: RolloutContext): void {
    this.#dispatch.onReport(type, context.stage);
    if (type === "rollout.stage.started" && this.policy.failure?.scope === "stage") {
      this.#thresholdBase = { failed: 0, ok: 0 };
    }
    this.#parts.ports.event(reportEvent(type, context, this.#parts));
  }

  // --- The settle loop: after every input, do all the work that is now allowed ---

  #settle(): void {
    if (this.#settling) return;
    this.#settling = true;
    try {
      while (this.#step()) {
        // Each step changed something: look again.
      }
    } finally {
      this.#settling = false;
    }
  }

  #step(): boolean {
    this.#flights.reap();
    if (this.#halt) {
      const reason = this.#halt;
      this.#halt = null;
      this.#supervisor.send({ type: "rollout.halt", reason });
      return true;
    }
    const phase = this.phase;
    if (phase === "halted" || phase === "cancelled") return this.#cancelFlights();
    if (phase !== "dispatching" && phase !== "activating") return false;
    for (const flight of this.#flights.held) {
      this.#flights.held.delete(flight);
      if (this.#windowClosed(flight.index, this.#table.state(flight.index))) {
        const now = this.#parts.clock.now();
        this.#flights.armWindow(flight, this.#parts.windows!.nextOpen(flight.index, now));
      } else {
        this.#flights.release(flight, this.#pumpHooks.token);
      }
      return true;
    }
    const breach = thresholdBreach(this.policy, { ...this.#scope, base: this.#thresholdBase });
    if (breach) return this.#supervisor.tell({ type: "rollout.threshold", figures: breach });
    const stage = this.#supervisor.context.stage;
    if (this.#dispatch.pump(phase, stage, this.#pumpHooks)) return true;
    if (this.#flights.size > 0) return false;
    const fact = this.#dispatch.stageDone(phase, stage, this.#parts.clock.now());
    return fact !== null && this.#supervisor.tell(fact);
  }

  /** Halt or cancel: every device in flight is cancelled, every timer cleared. */
  #cancelFlights(): boolean {
    this.#dispatch.clearRateTimer();
    this.#dispatch.clearWindowTimer();
    this.#supervisor.clearBake();
    return this.#flights.cancelAll();
  }
}
