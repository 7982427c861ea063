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
import type { Policy, PolicyProvenance } from "../policies/mod.ts";
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
import { type SimSummary, summarize } from "./summary.ts";

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
}

/** The id of virtual device `index`: a fixed, valid UUID. */
export function virtualDeviceId(index: number): string {
  return `00000000-0000-4000-8000-${index.toString(16).padStart(12, "0")}`;
}

/** Runs a rollout over virtual devices in simulated time until nothing is left to happen. */
export function runVirtual(options: VirtualOptions): SimSummary {
  const started = performance.now();
  const { engine, clock } = setupVirtual(options);
  engine.start();
  clock.run();
  return summarize(engine, {
    policy: options.policy,
    provenance: options.provenance ?? null,
    seed: options.seed,
    simulatedMs: clock.now(),
    wallMs: performance.now() - started,
  });
}

/** Builds the engine, clock and virtual devices of a run without starting it. */
export function setupVirtual(options: VirtualOptions): { engine: RolloutEngine; clock: SimClock } {
  const faults = options.faults ?? NO_FAULTS;
  const range = options.latency ?? { min: 200, max: 5_000 };
  const clock = new SimClock();
  const draw = stream(options.seed, "faults");
  const delay = stream(options.seed, "latency");
  const devices = Array.from({ length: options.devices }, (_, index) => virtualDeviceId(index));
  const autoPromote = options.autoPromote ?? true;
  const onEvent = options.onEvent;
  const engine: RolloutEngine = createRolloutEngine({
    id: `sim-${options.seed}`,
    policy: options.policy,
    provenance: options.provenance,
    devices,
    clock,
    random: stream(options.seed, "jitter"),
    token: seededTokens(stream(options.seed, "tokens")),
    ports: {
      initiate(device, token) {
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
  return { engine, clock };
}
