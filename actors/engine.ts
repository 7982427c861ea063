/**
 * The rollout engine: one supervisor actor, one device actor per device in flight, compact arrays
 * for the rest of the fleet. Clock, ports (transport and event log), randomness and tokens are
 * injected, so the same engine runs live and in simulated time. See docs/engine.md.
 */
import { type Actor, createActor } from "xstate";
import {
  abytes,
  newToken,
  statusName,
  toHex,
  TOKEN_BYTES,
  UPDATE_FAIL_DIGEST,
} from "../srup/mod.ts";
import type { Policy, PolicyProvenance } from "../policies/mod.ts";
import { backoffDelay } from "./backoff.ts";
import { type DeviceContext, type DeviceEvent, deviceMachine } from "./device_machine.ts";
import type { DeviceState } from "./device_state.ts";
import { RolloutCommandError } from "./errors.ts";
import { Fleet } from "./fleet.ts";
import type { Clock, RolloutEvent, RolloutPorts } from "./ports.ts";
import { RateLimiter } from "./rate_limit.ts";
import type { FailureFigures, HaltReason } from "./reasons.ts";
import {
  type RolloutContext,
  rolloutMachine,
  type RolloutMachineEvent,
  type RolloutPlan,
  type RolloutReport,
} from "./rollout_machine.ts";
import {
  checkSnapshot,
  type DeviceRecord,
  type IgnoredCounts,
  type RolloutSnapshot,
} from "./snapshot.ts";
import { stageEnds, stageOf } from "./stages.ts";
import {
  type ResponseOutcome,
  type RolloutEngineOptions,
  type RolloutPhase,
  type RolloutState,
  type RolloutSummary,
  type StageSummary,
  stateOf,
} from "./engine_types.ts";

type DeviceLogic = typeof deviceMachine;
type DeviceActor = Actor<DeviceLogic>;
type SupervisorActor = Actor<typeof rolloutMachine>;

/** A device in flight: its actor and its one pending timer. */
interface Flight {
  id: string;
  index: number;
  actor: DeviceActor;
  /** Hex of the current token. */
  token: string;
  /** Hex of earlier tokens, so a late 0xFF for one of them still halts. */
  previous: string[];
  timer: unknown;
  deadline: number | null;
  /** Finished, or parked until its stage activates: stop the actor at the next settle. */
  done: boolean;
}

const OPEN_STATES: ReadonlySet<DeviceState> = new Set([
  "initiated",
  "activating",
  "retrying",
  "received",
]);

/** Creates a rollout engine; call `start()` to begin (or to resume a restored one). */
export function createRolloutEngine(options: RolloutEngineOptions): RolloutEngine {
  return new RolloutEngine(options);
}

/** One rollout. Inputs: `response()` and the commands. Outputs: the ports. */
export class RolloutEngine {
  readonly id: string;
  readonly policy: Policy;
  #devices: readonly string[];
  #clock: Clock;
  #ports: RolloutPorts;
  #random: () => number;
  #makeToken: () => Uint8Array;
  #provenance: PolicyProvenance | null;
  #fleet: Fleet;
  #supervisor: SupervisorActor;
  #deviceLogic: DeviceLogic;
  #retry: { attempts: number; on: Policy["retry"]["on"] };
  #rate: RateLimiter | null;
  #flights = new Map<string, Flight>();
  /** Flights whose next send waits for the rollout to allow it (a retry, an ACTIVATE). */
  #held = new Set<Flight>();
  #finished: Flight[] = [];
  #cursor = 0;
  #activationCursor = 0;
  #rateTimer: unknown = null;
  #rateTimerAt = Infinity;
  #bakeTimer: unknown = null;
  /** A digest mismatch seen and not yet handed to the supervisor: from now on nothing is sent. */
  #halt: HaltReason | null = null;
  #thresholdBase = { failed: 0, ok: 0 };
  #ignored: IgnoredCounts = { staleToken: 0, notInFlight: 0, unexpected: 0 };
  #started = false;
  #restoring: RolloutSnapshot | null;
  #settling = false;
  #reported = false;
  /** Hex of the token of the RESPONSE being handled, which may be an earlier attempt's. */
  #responseHex: string | null = null;

  constructor(options: RolloutEngineOptions) {
    const { policy, devices } = options;
    checkDevices(devices);
    this.id = options.id;
    this.policy = policy;
    this.#devices = devices;
    this.#clock = options.clock;
    this.#ports = options.ports;
    this.#random = options.random ?? Math.random;
    this.#makeToken = options.token ?? newToken;
    this.#provenance = options.provenance ?? null;
    this.#fleet = new Fleet(
      devices.length,
      stageEnds(policy.stages.map((s) => s.percent), devices.length),
    );
    this.#retry = { attempts: policy.retry.attempts, on: policy.retry.on };
    this.#rate = policy.rate ? new RateLimiter(policy.rate) : null;
    this.#deviceLogic = deviceMachine.provide({
      actions: {
        sendInitiate: ({ context, event }) => this.#sendInitiate(context, event),
        sendActivate: ({ context }) => this.#sendActivate(context),
        report: ({ context, event }, { state }) => this.#onDevice(state, context, event),
      },
      guards: { activateNow: () => this.#activatesNow() },
    });
    const supervisor = rolloutMachine.provide({
      actions: {
        report: ({ context }, { type }) => this.#onRollout(type, context),
        armBake: ({ context }) => this.#armBake(context.bakeUntil),
      },
    });
    const plan = planOf(policy);
    this.#restoring = options.snapshot ? checkSnapshot(options.snapshot) : null;
    if (this.#restoring) {
      if (this.#restoring.rollout !== this.id) {
        throw new RangeError(
          `Cannot restore rollout "${this.id}": the snapshot is of "${this.#restoring.rollout}"`,
        );
      }
      this.#supervisor = createActor(supervisor, {
        // deno-lint-ignore no-explicit-any -- a persisted snapshot is JSON by design
        snapshot: this.#restoring.machine as any,
        input: { plan },
      });
      const restoredPlan = (this.#supervisor.getSnapshot().context as RolloutContext).plan;
      if (canonicalJson(restoredPlan) !== canonicalJson(plan)) {
        throw new RangeError(`Cannot restore rollout "${this.id}": its policy has changed`);
      }
    } else {
      this.#supervisor = createActor(supervisor, { input: { plan } });
    }
    this.#supervisor.start();
    if (this.#restoring) this.#restore(this.#restoring);
  }

  /** The rollout's state: `created`, `running`, `paused`, `waiting_approval`, `halted`, … */
  get state(): RolloutState {
    return stateOf(this.#phase());
  }

  /** The supervisor's finer state: `dispatching`, `activating`, `baking`, … */
  get phase(): RolloutPhase {
    return this.#phase();
  }

  /** Starts the rollout, or resumes a restored one (re-arming its timers). */
  start(): void {
    if (this.#started) throw new RolloutCommandError("already_started", "start", this.state);
    this.#started = true;
    const restored = this.#restoring;
    this.#restoring = null;
    if (restored) {
      for (const flight of this.#flights.values()) {
        if (flight.deadline !== null) this.#arm(flight, flight.deadline);
      }
      const context = this.#context();
      if (this.#phase() === "baking") this.#armBake(context.bakeUntil);
      this.#emit({
        type: "rollout.restored",
        stage: context.stage,
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
    const flight = this.#flights.get(device);
    if (!flight || flight.done) {
      this.#ignored.notInFlight++;
      return "not_in_flight";
    }
    const hex = toHex(token);
    if (hex !== flight.token) {
      // A digest mismatch on an earlier attempt still means the file is bad: it halts too.
      if (!(status === UPDATE_FAIL_DIGEST && flight.previous.includes(hex))) {
        this.#ignored.staleToken++;
        return "stale_token";
      }
    }
    this.#responseHex = hex;
    try {
      if (!this.#deliver(flight, { type: "device.response", status })) {
        this.#ignored.unexpected++;
        return "unexpected";
      }
    } finally {
      this.#responseHex = null;
    }
    return "accepted";
  }

  /** Whether a send the engine asked for is still wanted (the live layer asks before publishing). */
  shouldSend(device: string, token: Uint8Array): boolean {
    const flight = this.#flights.get(device);
    if (!flight || flight.done || this.#halt || this.#isOver()) return false;
    const state = this.#fleet.state(flight.index);
    return (state === "initiated" || state === "activating") && toHex(token) === flight.token;
  }

  /**
   * After a restore: sends ACTIVATE again, with the same token, to every device whose confirmation
   * was never recorded, and restarts its activation timeout. Returns how many were sent.
   */
  resendPendingActivations(): number {
    if (!this.#canSend()) return 0;
    let sent = 0;
    for (const flight of this.#flights.values()) {
      if (flight.done || this.#fleet.state(flight.index) !== "activating") continue;
      const deadline = this.#clock.now() + this.policy.timeouts.activation;
      this.#arm(flight, deadline);
      this.#emitDevice("activating", flight, { deadline, resent: true });
      this.#ports.activate(flight.id, this.#fleet.token(flight.index).slice());
      sent++;
    }
    return sent;
  }

  /** Stops new work (new devices, retries, ACTIVATEs) until `resume()`. */
  pause(): void {
    if (!this.#isActive()) this.#refuse("not_running", "pause");
    this.#command({ type: "rollout.pause" });
  }

  /** Resumes a paused rollout; after a threshold pause, the threshold counts from here. */
  resume(): void {
    if (this.#phase() !== "paused") this.#refuse("not_paused", "resume");
    if (this.#context().pauseReason?.kind === "failure_threshold") {
      this.#thresholdBase = this.#thresholdCounts();
    }
    this.#command({ type: "rollout.resume" });
  }

  /** Grants the manual approval the current stage waits for. */
  promote(): void {
    if (this.#phase() !== "waiting_approval") this.#refuse("not_waiting_approval", "promote");
    this.#command({ type: "rollout.promote" });
  }

  /** Stops all work for good; devices keep whatever they run now. */
  cancel(): void {
    if (this.#isOver()) this.#refuse("finished", "cancel");
    this.#command({ type: "rollout.cancel" });
  }

  /**
   * Stops every timer and actor without changing the rollout or emitting anything, as a process
   * exit would; take a snapshot first to restore the rollout elsewhere. The engine is unusable after.
   */
  stop(): void {
    this.#clearRateTimer();
    this.#clearBake();
    for (const flight of this.#flights.values()) {
      this.#disarm(flight);
      flight.actor.stop();
    }
    this.#flights.clear();
    this.#held.clear();
    this.#finished.length = 0;
    this.#supervisor.stop();
  }

  /** A cheap summary: state, stage figures, counts, reasons, attempts histogram. */
  summary(): RolloutSummary {
    const context = this.#context();
    const fleet = this.#fleet;
    const counts = fleet.counts();
    const stages = this.policy.stages.map((stage, index): StageSummary => {
      const count = (state: DeviceState) => fleet.stageCount(index, state);
      return {
        percent: stage.percent,
        devices: fleet.stageSize(index),
        pending: count("pending"),
        inFlight: count("initiated") + count("activating") + count("retrying") +
          count("timed_out"),
        received: count("received"),
        activated: count("activated"),
        failed: count("failed"),
        cancelled: count("cancelled"),
      };
    });
    return {
      id: this.id,
      state: this.state,
      phase: this.#phase(),
      stage: context.stage,
      stages,
      devices: fleet.size,
      counts,
      inFlight: this.#flights.size,
      activated: counts.activated,
      failed: counts.failed,
      pauseReason: context.pauseReason,
      haltReason: context.haltReason ?? this.#halt,
      bakeUntil: context.bakeUntil,
      attempts: fleet.attemptHistogram(),
      ignored: { ...this.#ignored },
    };
  }

  /** The whole rollout as plain JSON; restore it with `createRolloutEngine({ snapshot })`. */
  snapshot(options: { devices?: boolean } = {}): RolloutSnapshot {
    const devices: DeviceRecord[] = [];
    const fleet = this.#fleet;
    // Without devices: the rollout-level head a store keeps beside its per-device rows.
    const end = options.devices === false ? 0 : this.#cursor;
    for (let index = 0; index < end; index++) {
      const state = fleet.state(index);
      if (state === "pending" || state === "timed_out") continue;
      const flight = this.#flights.get(this.#devices[index]!);
      devices.push({
        id: this.#devices[index]!,
        state,
        token: toHex(fleet.token(index)),
        attempt: fleet.attempt(index),
        deadline: flight && !flight.done ? flight.deadline : null,
        lastStatus: fleet.lastStatus(index),
      });
    }
    return {
      format: 1,
      rollout: this.id,
      at: this.#clock.now(),
      // Round-tripped so that keys XState leaves undefined do not survive into the snapshot.
      machine: JSON.parse(JSON.stringify(this.#supervisor.getPersistedSnapshot())),
      cursor: this.#cursor,
      activationCursor: this.#activationCursor,
      rateNext: this.#rate?.next ?? null,
      thresholdBase: { ...this.#thresholdBase },
      ignored: { ...this.#ignored },
      devices,
    };
  }

  // --- Commands and the supervisor ---

  #refuse(code: ConstructorParameters<typeof RolloutCommandError>[0], command: string): never {
    if (!this.#started) throw new RolloutCommandError("not_started", command, this.state);
    throw new RolloutCommandError(code, command, this.state);
  }

  #command(event: RolloutMachineEvent): void {
    if (!this.#started) this.#refuse("not_started", event.type.slice("rollout.".length));
    this.#supervisor.send(event);
    this.#settle();
  }

  #phase(): RolloutPhase {
    const value = this.#supervisor.getSnapshot().value;
    return (typeof value === "string"
      ? value
      : (value as { active: string }).active) as RolloutPhase;
  }

  #context(): RolloutContext {
    return this.#supervisor.getSnapshot().context as RolloutContext;
  }

  #isActive(): boolean {
    const phase = this.#phase();
    return phase === "dispatching" || phase === "activating" || phase === "baking" ||
      phase === "waiting_approval";
  }

  #isOver(): boolean {
    const phase = this.#phase();
    return phase === "halted" || phase === "completed" || phase === "cancelled";
  }

  /** Whether a device that just reported 0x00 gets its ACTIVATE at once. */
  #activatesNow(): boolean {
    return this.#canSend() &&
      (this.policy.activation === "immediate" || this.#phase() === "activating");
  }

  /** Whether the engine may send an INITIATE or ACTIVATE now. */
  #canSend(): boolean {
    if (this.#halt) return false;
    const phase = this.#phase();
    return phase === "dispatching" || phase === "activating";
  }

  #onRollout(type: RolloutReport, context: RolloutContext): void {
    const stage = context.stage;
    const fleet = this.#fleet;
    const stageStart = fleet.ends[stage - 1] ?? 0;
    const stageFigures = () => ({
      percent: this.policy.stages[stage]!.percent,
      devices: fleet.stageSize(stage),
      activated: fleet.stageCount(stage, "activated"),
      failed: fleet.stageCount(stage, "failed"),
    });
    let event: Omit<RolloutEvent, "rollout" | "at"> = { type, stage };
    switch (type) {
      case "rollout.started":
        event.figures = {
          devices: fleet.size,
          stages: this.policy.stages.map((s) => s.percent),
          policy: this.policy.name,
          provenance: this.#provenance,
        };
        break;
      case "rollout.stage.started":
        this.#cursor = Math.max(this.#cursor, stageStart);
        if (this.policy.failure?.scope === "stage") this.#thresholdBase = { failed: 0, ok: 0 };
        event.figures = {
          percent: this.policy.stages[stage]!.percent,
          devices: fleet.stageSize(stage),
          first: stageStart,
          end: fleet.ends[stage]!,
        };
        break;
      case "rollout.stage.received":
        event.figures = { ...stageFigures(), received: fleet.stageCount(stage, "received") };
        break;
      case "rollout.stage.activating":
        this.#activationCursor = stageStart;
        break;
      case "rollout.stage.completed":
        event.figures = stageFigures();
        break;
      case "rollout.bake.started":
        event.deadline = context.bakeUntil ?? undefined;
        break;
      case "rollout.bake.completed":
        this.#clearBake();
        break;
      case "rollout.paused":
        event = { ...event, pauseReason: context.pauseReason ?? undefined };
        this.#clearRateTimer();
        break;
      case "rollout.halted":
        event = { ...event, haltReason: context.haltReason ?? undefined };
        break;
    }
    this.#emit(event);
  }

  #armBake(until: number | null): void {
    this.#clearBake();
    if (until === null) return;
    this.#bakeTimer = this.#clock.setTimeout(() => {
      this.#bakeTimer = null;
      this.#supervisor.send({ type: "rollout.bake.elapsed", at: this.#clock.now() });
      this.#settle();
    }, Math.max(0, until - this.#clock.now()));
  }

  #clearBake(): void {
    if (this.#bakeTimer !== null) this.#clock.clearTimeout(this.#bakeTimer);
    this.#bakeTimer = null;
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
    this.#reap();
    if (this.#halt) {
      const reason = this.#halt;
      this.#halt = null;
      this.#supervisor.send({ type: "rollout.halt", reason });
      return true;
    }
    const phase = this.#phase();
    if (phase === "halted" || phase === "cancelled") return this.#cancelFlights();
    if (phase !== "dispatching" && phase !== "activating") return false;
    for (const flight of this.#held) {
      this.#held.delete(flight);
      this.#release(flight);
      return true;
    }
    const breach = this.#breach();
    if (breach) return this.#tell({ type: "rollout.threshold", figures: breach });
    if (phase === "dispatching" ? this.#pump() : this.#pumpActivations()) return true;
    const stage = this.#context().stage;
    const end = this.#fleet.ends[stage]!;
    if (this.#flights.size > 0) return false;
    if (phase === "dispatching" && this.#cursor >= end) {
      if (this.policy.activation === "stage" && this.#fleet.stageCount(stage, "received") > 0) {
        return this.#tell({ type: "rollout.stage.received" });
      }
      return this.#tell(this.#settled(stage));
    }
    if (phase === "activating" && this.#activationCursor >= end) {
      return this.#tell(this.#settled(stage));
    }
    return false;
  }

  /** Sends the supervisor a fact; true when it changed state. */
  #tell(event: RolloutMachineEvent): boolean {
    const before = this.#supervisor.getSnapshot();
    this.#supervisor.send(event);
    return this.#supervisor.getSnapshot() !== before;
  }

  #settled(stage: number): RolloutMachineEvent {
    const devices = this.#fleet.stageSize(stage);
    const activated = this.#fleet.stageCount(stage, "activated");
    return {
      type: "rollout.stage.settled",
      at: this.#clock.now(),
      figures: {
        stage,
        devices,
        activated,
        percent: devices === 0 ? 100 : (activated * 100) / devices,
        minPercent: this.policy.success.minPercent,
      },
    };
  }

  /** Starts devices of the current stage while the concurrency cap and rate limit allow. */
  #pump(): boolean {
    const end = this.#fleet.ends[this.#context().stage]!;
    const concurrency = this.policy.concurrency;
    let started = false;
    while (this.#cursor < end && this.#flights.size < concurrency && this.#canSend()) {
      if (this.#rate) {
        const now = this.#clock.now();
        if (!this.#rate.allows(now)) {
          this.#armRate(this.#rate.next!);
          break;
        }
        this.#rate.take(now, {
          notified: this.#cursor + 1,
          succeeded: this.#fleet.count("activated"),
        });
      }
      const index = this.#cursor++;
      const flight = this.#open(index, null);
      flight.actor.send({ type: "device.initiate", token: this.#token() });
      started = true;
    }
    return started;
  }

  /** Two-phase activation: ACTIVATE the stage's received devices, within the concurrency cap. */
  #pumpActivations(): boolean {
    const end = this.#fleet.ends[this.#context().stage]!;
    let sent = false;
    while (
      this.#activationCursor < end && this.#flights.size < this.policy.concurrency &&
      this.#canSend()
    ) {
      const index = this.#activationCursor++;
      if (this.#fleet.state(index) !== "received") continue;
      const flight = this.#open(index, this.#recordOf(index, null));
      flight.actor.send({ type: "device.activate" });
      sent = true;
    }
    return sent;
  }

  #armRate(at: number): void {
    if (this.#rateTimer !== null && this.#rateTimerAt <= at) return;
    this.#clearRateTimer();
    this.#rateTimerAt = at;
    this.#rateTimer = this.#clock.setTimeout(() => {
      this.#rateTimer = null;
      this.#rateTimerAt = Infinity;
      this.#settle();
    }, Math.max(0, at - this.#clock.now()));
  }

  #clearRateTimer(): void {
    if (this.#rateTimer !== null) this.#clock.clearTimeout(this.#rateTimer);
    this.#rateTimer = null;
    this.#rateTimerAt = Infinity;
  }

  /** Successes and failures in the threshold's scope. */
  #thresholdCounts(): { failed: number; ok: number } {
    const fleet = this.#fleet;
    const scope = this.policy.failure?.scope ?? "stage";
    const stage = this.#context().stage;
    const count = (state: DeviceState) =>
      scope === "stage" ? fleet.stageCount(stage, state) : fleet.count(state);
    // In two-phase activation a received device is a success so far: it waits for its stage.
    const ok = count("activated") + (this.policy.activation === "stage" ? count("received") : 0);
    return { failed: count("failed"), ok };
  }

  #breach(): FailureFigures | null {
    const rule = this.policy.failure;
    if (!rule) return null;
    const now = this.#thresholdCounts();
    const failed = now.failed - this.#thresholdBase.failed;
    const finished = failed + now.ok - this.#thresholdBase.ok;
    if (finished < rule.minDevices || failed * 100 <= rule.maxPercent * finished) return null;
    return {
      scope: rule.scope,
      stage: this.#context().stage,
      failed,
      finished,
      percent: (failed * 100) / finished,
      maxPercent: rule.maxPercent,
    };
  }

  // --- Devices ---

  #token(): Uint8Array {
    return abytes(this.#makeToken(), TOKEN_BYTES, "token");
  }

  /** Creates the actor of a device now in flight: fresh, or in the state of `record`. */
  #open(index: number, record: DeviceRecord | null): Flight {
    const id = this.#devices[index]!;
    const input = { id, retry: this.#retry };
    const actor = record
      ? createActor(this.#deviceLogic, {
        input,
        snapshot: this.#deviceLogic.resolveState({
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
      : createActor(this.#deviceLogic, { input });
    const flight: Flight = {
      id,
      index,
      actor,
      token: record?.token ?? "",
      previous: [],
      timer: null,
      deadline: record?.deadline ?? null,
      done: false,
    };
    this.#flights.set(id, flight);
    actor.start();
    return flight;
  }

  #recordOf(index: number, deadline: number | null): DeviceRecord {
    return {
      id: this.#devices[index]!,
      state: this.#fleet.state(index) as DeviceRecord["state"],
      token: toHex(this.#fleet.token(index)),
      attempt: this.#fleet.attempt(index),
      deadline,
      lastStatus: this.#fleet.lastStatus(index),
    };
  }

  /** Sends a device actor an event and settles; true when the device changed state. */
  #deliver(flight: Flight, event: DeviceEvent): boolean {
    this.#reported = false;
    flight.actor.send(event);
    const changed = this.#reported;
    this.#settle();
    return changed;
  }

  /** A held device may go on: a retry's INITIATE, or an ACTIVATE. */
  #release(flight: Flight): void {
    if (flight.done) return;
    const state = this.#fleet.state(flight.index);
    if (state === "retrying") flight.actor.send({ type: "device.initiate", token: this.#token() });
    else if (state === "received") flight.actor.send({ type: "device.activate" });
  }

  #arm(flight: Flight, deadline: number): void {
    this.#disarm(flight);
    flight.deadline = deadline;
    flight.timer = this.#clock.setTimeout(
      () => this.#onDeadline(flight),
      Math.max(0, deadline - this.#clock.now()),
    );
  }

  #disarm(flight: Flight): void {
    if (flight.timer !== null) this.#clock.clearTimeout(flight.timer);
    flight.timer = null;
    flight.deadline = null;
  }

  #onDeadline(flight: Flight): void {
    flight.timer = null;
    if (flight.done) return;
    if (this.#fleet.state(flight.index) === "retrying") {
      // The backoff is over; the retry goes out now, or when the rollout allows it.
      this.#held.add(flight);
      this.#settle();
      return;
    }
    this.#deliver(flight, { type: "device.timeout" });
  }

  #sendInitiate(context: DeviceContext, event: DeviceEvent): void {
    if (event.type !== "device.initiate") return;
    this.#ports.initiate(context.id, event.token, context.attempt);
  }

  #sendActivate(context: DeviceContext): void {
    const flight = this.#flights.get(context.id)!;
    this.#ports.activate(context.id, this.#fleet.token(flight.index).slice());
  }

  /** A device entered `state`: record it, arm its timer, emit its event, react. */
  #onDevice(state: DeviceState, context: DeviceContext, event: DeviceEvent): void {
    this.#reported = true;
    const flight = this.#flights.get(context.id)!;
    const index = flight.index;
    const from = this.#fleet.state(index);
    const status = event.type === "device.response" ? event.status : this.#fleet.lastStatus(index);
    this.#fleet.set(index, state, context.attempt, status);
    this.#disarm(flight);
    const now = this.#clock.now();
    const timeouts = this.policy.timeouts;
    switch (state) {
      case "initiated": {
        if (event.type === "device.initiate") this.#fleet.setToken(index, event.token);
        if (flight.token !== "") flight.previous.push(flight.token);
        flight.token = context.token;
        this.#arm(flight, now + timeouts.response);
        this.#emitDevice(state, flight, { deadline: flight.deadline! });
        break;
      }
      case "received":
        this.#emitDevice(state, flight, { status: status });
        if (this.#activatesNow()) break;
        if (this.policy.activation === "immediate" || this.#phase() === "activating") {
          this.#held.add(flight);
        } else {
          // Two-phase: the device waits for its stage without an actor or a slot.
          this.#finish(flight);
        }
        break;
      case "activating":
        this.#arm(flight, now + timeouts.activation);
        this.#emitDevice(state, flight, { deadline: flight.deadline! });
        break;
      case "timed_out":
        this.#emitDevice(state, flight, {
          phase: from === "activating" ? "activation" : "response",
        });
        break;
      case "retrying": {
        const delay = backoffDelay(this.policy.retry, context.attempt, this.#random);
        this.#arm(flight, now + delay);
        this.#emitDevice(state, flight, {
          status: status,
          reason: reasonOf(event),
          deadline: flight.deadline!,
        });
        break;
      }
      case "activated":
        this.#emitDevice(state, flight, { status: status });
        this.#finish(flight);
        break;
      case "failed":
        this.#emitDevice(state, flight, { status: status, reason: reasonOf(event) });
        this.#finish(flight);
        if (event.type === "device.response" && event.status === UPDATE_FAIL_DIGEST) {
          this.#halt ??= {
            kind: "digest_mismatch",
            device: context.id,
            status: UPDATE_FAIL_DIGEST,
            token: this.#responseHex ?? flight.token,
            stage: stageOf(this.#fleet.ends, index),
          };
        }
        break;
      case "cancelled":
        this.#emitDevice(state, flight, { from });
        this.#finish(flight);
        break;
    }
  }

  /** Marks a device finished (or parked): its actor is stopped at the next settle step. */
  #finish(flight: Flight): void {
    flight.done = true;
    this.#finished.push(flight);
  }

  /** Stops the actors of finished and parked devices and frees their slots. */
  #reap(): void {
    if (this.#finished.length === 0) return;
    for (const flight of this.#finished) {
      this.#disarm(flight);
      this.#held.delete(flight);
      flight.actor.stop();
      this.#flights.delete(flight.id);
    }
    this.#finished.length = 0;
  }

  /** Halt or cancel: every device in flight is cancelled, every timer cleared. */
  #cancelFlights(): boolean {
    this.#clearRateTimer();
    this.#clearBake();
    this.#held.clear();
    if (this.#flights.size === 0) return false;
    for (const flight of this.#flights.values()) {
      if (!flight.done) flight.actor.send({ type: "device.cancel" });
    }
    return true;
  }

  // --- Events ---

  #emit(event: Omit<RolloutEvent, "rollout" | "at">): void {
    this.#ports.event({ ...event, rollout: this.id, at: this.#clock.now() } as RolloutEvent);
  }

  #emitDevice(state: DeviceState, flight: Flight, data: Partial<RolloutEvent>): void {
    this.#ports.event({
      type: `device.${state}` as RolloutEvent["type"],
      rollout: this.id,
      at: this.#clock.now(),
      device: flight.id,
      stage: stageOf(this.#fleet.ends, flight.index),
      token: flight.token,
      attempt: this.#fleet.attempt(flight.index),
      ...data,
    });
  }

  // --- Restore ---

  #restore(snapshot: RolloutSnapshot): void {
    const positions = new Map<string, number>();
    this.#devices.forEach((id, index) => positions.set(id, index));
    const phase = this.#phase();
    // Received devices are in flight in immediate mode, or once the activation cursor passed them.
    const inFlightReceived = (index: number) =>
      this.policy.activation === "immediate" ||
      (phase === "activating" && index < snapshot.activationCursor);
    let cursor = 0;
    for (const record of snapshot.devices) {
      const index = positions.get(record.id);
      if (index === undefined) {
        throw new RangeError(`Cannot restore rollout "${this.id}": unknown device "${record.id}"`);
      }
      cursor = Math.max(cursor, index + 1);
      this.#fleet.set(index, record.state, record.attempt, record.lastStatus);
      this.#fleet.setToken(index, Uint8Array.fromHex(record.token));
      if (!OPEN_STATES.has(record.state) || this.#isOver()) continue;
      if (record.state === "received") {
        if (inFlightReceived(index)) this.#held.add(this.#open(index, record));
        continue;
      }
      this.#open(index, record);
    }
    if (snapshot.cursor < cursor) {
      throw new RangeError(
        `Cannot restore rollout "${this.id}": cursor ${snapshot.cursor} is before a started device`,
      );
    }
    this.#cursor = snapshot.cursor;
    this.#activationCursor = snapshot.activationCursor;
    if (this.policy.rate) this.#rate = new RateLimiter(this.policy.rate, snapshot.rateNext);
    this.#thresholdBase = { ...snapshot.thresholdBase };
    this.#ignored = { ...snapshot.ignored };
  }
}

/** JSON with sorted keys: a snapshot that went through a store (PostgreSQL's jsonb reorders keys) still compares equal. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

/** The supervisor's plan from a policy. */
function planOf(policy: Policy): RolloutPlan {
  return {
    stages: policy.stages.map(({ percent, bake, approval }) => ({ percent, bake, approval })),
    activation: policy.activation,
    minSuccessPercent: policy.success.minPercent,
    failureAction: policy.failure?.action ?? "pause",
  };
}

function reasonOf(event: DeviceEvent): string | undefined {
  if (event.type === "device.timeout") return "timeout";
  return event.type === "device.response" ? statusName(event.status) : undefined;
}

function checkDevices(devices: readonly string[]): void {
  if (!Array.isArray(devices)) throw new TypeError("Expected devices to be an array of ids");
  const seen = new Set<string>();
  for (const id of devices) {
    if (typeof id !== "string" || id === "") {
      throw new TypeError(`Expected every device id to be a non-empty string: got ${String(id)}`);
    }
    if (seen.has(id)) throw new RangeError(`Duplicate device "${id}" in the target list`);
    seen.add(id);
  }
}
