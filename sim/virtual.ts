/**
 * The virtual simulation: the real engine, in-memory devices that answer with simulated latency and
 * injected faults, and a simulated clock. Deterministic for a given seed.
 */
import {
  createRolloutEngine,
  isFinal,
  type RolloutEngine,
  type RolloutEvent,
} from "../actors/mod.ts";
import {
  type Policy,
  type PolicyProvenance,
  WindowCalendar,
  windowCalendars,
  windowGrouper,
} from "../policies/mod.ts";
import {
  activateOutcome,
  type FaultMix,
  initiateOutcome,
  latency,
  type LatencyRange,
  NO_FAULTS,
} from "./faults.ts";
import { seededTokens, stream } from "./random.ts";
import { SimClock } from "./sim_clock.ts";
import { type SimSummary, type SimWindows, summarize } from "./summary.ts";

/** Options of {@linkcode runVirtual}. */
export interface VirtualOptions {
  policy: Policy;
  provenance?: PolicyProvenance;
  /** How many virtual devices. */
  devices: number;
  seed: number;
  faults?: FaultMix;
  /** Answer delay; default 200ms..5s. */
  latency?: LatencyRange;
  /** Grant manual approvals at once (the default); false leaves the run waiting for approval. */
  autoPromote?: boolean;
  /** Cancel the rollout at this simulated time (ms). */
  cancelAfter?: number;
  /** Sees every engine event (tests use it; keep it cheap for big runs). */
  onEvent?: (event: RolloutEvent) => void;
  /** Clock time the run starts at (ms since 1970); default 0. With windows the date matters. */
  start?: number;
  /**
   * With windows per tag value (`windows.by`): the values dealt to the devices in turn (device i
   * gets value i mod n); default the policy's `groups` names.
   */
  tagValues?: readonly string[];
}

/** The id of virtual device `index`: a fixed, valid UUID. */
export function virtualDeviceId(index: number): string {
  return `00000000-0000-4000-8000-${index.toString(16).padStart(12, "0")}`;
}

/** Runs a rollout over virtual devices in simulated time until nothing is left to happen. */
export function runVirtual(options: VirtualOptions): SimSummary {
  const started = performance.now();
  const { engine, clock, windows } = setupVirtual(options);
  engine.start();
  clock.run();
  return summarize(engine, {
    policy: options.policy,
    provenance: options.provenance ?? null,
    seed: options.seed,
    simulatedMs: clock.now() - (options.start ?? 0),
    wallMs: performance.now() - started,
    windows,
  });
}

/** A virtual run: its engine, clock, and (with windows) the sends checked against them. */
export interface VirtualRun {
  engine: RolloutEngine;
  clock: SimClock;
  /** Filled in as the run goes; null without windows. */
  windows: SimWindows | null;
}

/** Builds the engine, clock and virtual devices of a run without starting it. */
export function setupVirtual(options: VirtualOptions): VirtualRun {
  const faults = options.faults ?? NO_FAULTS;
  const range = options.latency ?? { min: 200, max: 5_000 };
  const clock = new SimClock(options.start ?? 0);
  const draw = stream(options.seed, "faults");
  const delay = stream(options.seed, "latency");
  const devices = Array.from({ length: options.devices }, (_, index) => virtualDeviceId(index));
  const autoPromote = options.autoPromote ?? true;
  const onEvent = options.onEvent;
  const windowed = virtualWindows(options);
  const positions = windowed ? new Map(devices.map((id, index) => [id, index])) : null;
  const engine: RolloutEngine = createRolloutEngine({
    id: `sim-${options.seed}`,
    policy: options.policy,
    provenance: options.provenance,
    devices,
    clock,
    random: stream(options.seed, "jitter"),
    token: seededTokens(stream(options.seed, "tokens")),
    windowGroups: windowed?.groups,
    ports: {
      initiate(device, token) {
        if (windowed) windowed.check(positions!.get(device)!, clock.now());
        const status = initiateOutcome(faults, draw());
        const after = latency(range, delay());
        if (status !== null) clock.setTimeout(() => engine.response(device, token, status), after);
      },
      activate(device, token) {
        const status = activateOutcome(faults, draw());
        const after = latency(range, delay());
        if (status !== null) clock.setTimeout(() => engine.response(device, token, status), after);
      },
      event(event) {
        onEvent?.(event);
        if (autoPromote && event.type === "rollout.approval.waiting") {
          // Not from inside the engine's own call: the promote happens on the next tick.
          clock.setTimeout(() => engine.promote(), 0);
        }
      },
    },
  });
  if (options.cancelAfter !== undefined) {
    clock.setTimeout(() => {
      if (!isFinal(engine.state)) engine.cancel();
    }, options.cancelAfter);
  }
  return { engine, clock, windows: windowed?.report ?? null };
}

/**
 * The devices' window groups from the dealt tag values, and a check of every INITIATE against the
 * device's window made apart from the engine (its own calendars and cache): the run's proof.
 */
function virtualWindows(options: VirtualOptions) {
  const windows = options.policy.windows;
  if (!windows) return null;
  const values = [...(options.tagValues ?? Object.keys(windows.groups ?? {}))];
  const grouper = windowGrouper(windows);
  const valueGroups = values.map((value) => grouper(value));
  const groups = new Uint8Array(options.devices);
  if (values.length > 0) {
    for (let i = 0; i < options.devices; i++) groups[i] = valueGroups[i % values.length]!;
  }
  const calendars = windowCalendars(windows);
  // Per group, the open interval last seen: sends come in bursts inside one window.
  const seen = calendars.map(() => ({ from: Infinity, until: -Infinity }));
  const report: SimWindows = {
    by: windows.by ?? null,
    values,
    initiates: 0,
    outsideWindow: 0,
  };
  const open = (calendar: WindowCalendar | undefined, group: number, t: number) => {
    const interval = seen[group];
    if (!calendar || !interval) return false;
    if (t >= interval.from && t < interval.until) return true;
    if (!calendar.isOpen(t)) return false;
    interval.from = t;
    interval.until = calendar.nextClose(t) ?? Infinity;
    return true;
  };
  return {
    groups,
    report,
    check(index: number, t: number) {
      report.initiates++;
      const group = groups[index]!;
      if (!open(calendars[group], group, t)) report.outsideWindow++;
    },
  };
}
