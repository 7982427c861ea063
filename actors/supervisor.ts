/**
 * The rollout supervisor actor as the engine sees it: its phase read from tags, the questions the
 * engine asks it (may it send, is it over), and the event each of its reports becomes.
 */
import { type Actor, createActor, type SnapshotFrom } from "xstate";
import type { Policy, PolicyProvenance } from "../policies/mod.ts";
import type { DeviceTable } from "./device_table.ts";
import type { Clock } from "./ports.ts";
import type { RolloutLevelEvent, StageFigures } from "./events.ts";
import {
  type RolloutContext,
  rolloutMachine,
  type RolloutMachineEvent,
  type RolloutPlan,
  type RolloutReport,
} from "./rollout_machine.ts";
import { ROLLOUT_PHASES, type RolloutPhase } from "./states.ts";

type SupervisorSnapshot = SnapshotFrom<typeof rolloutMachine>;

/** What a supervisor needs: its plan, a clock for the bake timer, and where its reports go. */
export interface SupervisorOptions {
  id: string;
  plan: RolloutPlan;
  clock: Clock;
  report(type: RolloutReport, context: RolloutContext): void;
  /** Called after a bake timer fired and the supervisor took it. */
  afterBake(): void;
  /** Its persisted snapshot, to restore it (RangeError if the plan changed). */
  persisted?: unknown;
}

/** The supervisor actor of one rollout, and its bake timer. */
export class Supervisor {
  readonly #actor: Actor<typeof rolloutMachine>;
  readonly #clock: Clock;
  readonly #afterBake: () => void;
  #seen: SupervisorSnapshot | null = null;
  #phase: RolloutPhase = "idle";
  #bakeTimer: unknown = null;

  constructor(options: SupervisorOptions) {
    const { plan, persisted } = options;
    this.#clock = options.clock;
    this.#afterBake = options.afterBake;
    const logic = rolloutMachine.provide({
      actions: {
        report: ({ context }, { type }) => {
          if (type === "rollout.bake.completed") this.clearBake();
          options.report(type, context);
        },
        // The action sees the new context; the actor's snapshot is still the old one here.
        armBake: ({ context }) => this.armBake(context.bakeUntil),
      },
    });
    // deno-lint-ignore no-explicit-any -- a persisted snapshot is JSON by design
    const snapshot = persisted as any;
    this.#actor = createActor(logic, { snapshot, input: { plan } });
    if (persisted !== undefined && canonicalJson(this.context.plan) !== canonicalJson(plan)) {
      throw new RangeError(`Cannot restore rollout "${options.id}": its policy has changed`);
    }
    this.#actor.start();
  }

  /** Arms the timer that ends the bake at `until` (again after a restore: the current one). */
  armBake(until = this.context.bakeUntil): void {
    this.clearBake();
    if (until === null) return;
    this.#bakeTimer = this.#clock.setTimeout(() => {
      this.#bakeTimer = null;
      this.#actor.send({ type: "rollout.bake.elapsed", at: this.#clock.now() });
      this.#afterBake();
    }, Math.max(0, until - this.#clock.now()));
  }

  clearBake(): void {
    if (this.#bakeTimer !== null) this.#clock.clearTimeout(this.#bakeTimer);
    this.#bakeTimer = null;
  }

  /** The finer state, read from the tag its leaf state carries. */
  get phase(): RolloutPhase {
    const snapshot = this.#actor.getSnapshot();
    if (snapshot !== this.#seen) {
      this.#seen = snapshot;
      this.#phase = ROLLOUT_PHASES.find((phase) => snapshot.hasTag(phase))!;
    }
    return this.#phase;
  }

  /** The phase a paused rollout goes back to on resume (its history state), or null. */
  get resumesTo(): RolloutPhase | null {
    if (this.phase !== "paused") return null;
    const nodes = Object.values(this.#actor.getSnapshot().historyValue ?? {}).flat();
    // Each state's key is its phase: `rollout.active.baking` resumes baking.
    const key = (nodes[0] as { id?: string } | undefined)?.id?.split(".").at(-1);
    return ROLLOUT_PHASES.find((phase) => phase === key) ?? "dispatching";
  }

  get context(): RolloutContext {
    return this.#actor.getSnapshot().context;
  }

  /** Whether an operator can pause it: running or waiting for approval. */
  get active(): boolean {
    return this.#actor.getSnapshot().hasTag("active");
  }

  /** Whether INITIATEs and ACTIVATEs may go out in this phase. */
  get sending(): boolean {
    return this.#actor.getSnapshot().hasTag("sending");
  }

  /** Whether it is over: halted, completed or cancelled. */
  get over(): boolean {
    return this.#actor.getSnapshot().status === "done";
  }

  send(event: RolloutMachineEvent): void {
    this.#actor.send(event);
  }

  /** Sends a fact; true when it changed state. */
  tell(event: RolloutMachineEvent): boolean {
    const before = this.#actor.getSnapshot();
    this.#actor.send(event);
    return this.#actor.getSnapshot() !== before;
  }

  /** The persisted snapshot as plain JSON. */
  persisted(): unknown {
    // Round-tripped so that keys XState leaves undefined do not survive into the snapshot.
    return JSON.parse(JSON.stringify(this.#actor.getPersistedSnapshot()));
  }

  /** Stops the actor and its timer without a transition. */
  stop(): void {
    this.clearBake();
    this.#actor.stop();
  }
}

/** The supervisor's plan from a policy. */
export function planOf(policy: Policy): RolloutPlan {
  return {
    stages: policy.stages.map(({ percent, bake, approval }) => ({ percent, bake, approval })),
    activation: policy.activation,
    minSuccessPercent: policy.success.minPercent,
    failureAction: policy.failure?.action ?? "pause",
  };
}

/** What a report's event is built from. */
export interface ReportSource {
  id: string;
  clock: Clock;
  policy: Policy;
  provenance: PolicyProvenance | null;
  table: DeviceTable;
}

/** The event a supervisor report becomes, with its figures. */
export function reportEvent(
  type: RolloutReport,
  context: RolloutContext,
  source: ReportSource,
): RolloutLevelEvent {
  const { table, policy } = source;
  const stage = context.stage;
  const base = { rollout: source.id, at: source.clock.now(), stage };
  const stageFigures = (): StageFigures => ({
    percent: policy.stages[stage]!.percent,
    devices: table.stageSize(stage),
    activated: table.stageCount(stage, "activated"),
    failed: table.stageCount(stage, "failed"),
  });
  switch (type) {
    case "rollout.started":
      return {
        ...base,
        type,
        figures: {
          devices: table.size,
          stages: policy.stages.map((s) => s.percent),
          policy: policy.name,
          provenance: source.provenance,
        },
      };
    case "rollout.stage.started":
      return {
        ...base,
        type,
        figures: {
          percent: policy.stages[stage]!.percent,
          devices: table.stageSize(stage),
          first: table.ends[stage - 1] ?? 0,
          end: table.ends[stage]!,
        },
      };
    case "rollout.stage.received":
      return {
        ...base,
        type,
        figures: { ...stageFigures(), received: table.stageCount(stage, "received") },
      };
    case "rollout.stage.completed":
      return { ...base, type, figures: stageFigures() };
    case "rollout.bake.started":
      return { ...base, type, deadline: context.bakeUntil ?? undefined };
    case "rollout.paused":
      return { ...base, type, pauseReason: context.pauseReason ?? undefined };
    case "rollout.halted":
      return { ...base, type, haltReason: context.haltReason ?? undefined };
    default:
      return { ...base, type };
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
