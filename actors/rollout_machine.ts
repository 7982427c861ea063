/**
 * The rollout supervisor's own states: stages, bake, approval, pause, halt, cancel. It is pure: the
 * engine feeds it facts (`rollout.stage.settled`, `rollout.threshold`, …) with their time `at`, and
 * it reports every transition through the injected `report` action. Fleet-sized data stays in the
 * engine, out of this machine's context, so `assign` never copies it.
 */
import { and, assign, not, setup } from "xstate";
import type { FailureFigures, HaltReason, PauseReason, SuccessFigures } from "./reasons.ts";
import type { RolloutPhase } from "./states.ts";

/**
 * Tags of the supervisor's states: each leaf is tagged with its phase; `active` marks every state
 * an operator can pause, `sending` those in which INITIATEs and ACTIVATEs go out.
 */
export type RolloutTag = RolloutPhase | "active" | "sending";

/** The parts of a policy the supervisor decides with. */
export interface RolloutPlan {
  stages: { percent: number; bake: number; approval: "manual" | "auto" }[];
  activation: "immediate" | "stage";
  minSuccessPercent: number;
  failureAction: "pause" | "abort";
}

/** The supervisor's context: small, JSON, persisted with `getPersistedSnapshot()`. */
export interface RolloutContext {
  plan: RolloutPlan;
  /** Index of the current stage. */
  stage: number;
  /** Clock time the current bake ends, or null. */
  bakeUntil: number | null;
  pauseReason: PauseReason | null;
  haltReason: HaltReason | null;
  /** Set when an operator resumes a stage that ended below the success percentage: it may pass. */
  gateOverride: boolean;
}

/** Events the supervisor accepts: operator commands, and facts from the engine. */
export type RolloutMachineEvent =
  | { type: "rollout.start" }
  | { type: "rollout.pause" }
  | { type: "rollout.resume" }
  | { type: "rollout.cancel" }
  | { type: "rollout.promote" }
  | { type: "rollout.halt"; reason: HaltReason }
  | { type: "rollout.threshold"; figures: FailureFigures }
  | { type: "rollout.stage.received" }
  | { type: "rollout.stage.settled"; at: number; figures: SuccessFigures }
  | { type: "rollout.bake.elapsed"; at: number };

/** Event types the supervisor reports; the engine adds figures and emits them. */
export type RolloutReport =
  | "rollout.started"
  | "rollout.stage.started"
  | "rollout.stage.received"
  | "rollout.stage.activating"
  | "rollout.stage.completed"
  | "rollout.bake.started"
  | "rollout.bake.completed"
  | "rollout.approval.waiting"
  | "rollout.promoted"
  | "rollout.paused"
  | "rollout.resumed"
  | "rollout.cancelled"
  | "rollout.halted"
  | "rollout.completed";

function report(type: RolloutReport) {
  return { type: "report", params: { type } } as const;
}

const NEXT_STAGE = ["nextStage", report("rollout.stage.started")] as const;

/** The stage gate: success reached → bake → approval → next stage (or done). */
const STAGE_GATE = [
  {
    guard: and([not("successReached"), "abortOnFailure"]),
    target: "#rollout.halted",
    actions: ["haltForSuccess", report("rollout.halted")],
  },
  {
    guard: not("successReached"),
    target: "#rollout.paused",
    actions: ["pauseForSuccess", report("rollout.paused")],
  },
  {
    guard: "hasBake",
    target: "baking",
    actions: [report("rollout.stage.completed"), "startBake", report("rollout.bake.started")],
  },
  {
    guard: "needsApproval",
    target: "waiting_approval",
    actions: [report("rollout.stage.completed"), report("rollout.approval.waiting")],
  },
  {
    guard: "lastStage",
    target: "#rollout.completed",
    actions: [report("rollout.stage.completed"), report("rollout.completed")],
  },
  {
    target: "dispatching",
    reenter: true,
    actions: [report("rollout.stage.completed"), ...NEXT_STAGE],
  },
] as const;

/** The supervisor machine; the engine provides `report` and `armBake`. */
export const rolloutMachine = setup({
  types: {
    context: {} as RolloutContext,
    events: {} as RolloutMachineEvent,
    input: {} as { plan: RolloutPlan },
    tags: {} as RolloutTag,
  },
  actions: {
    report: (_args, _params: { type: RolloutReport }) => {},
    /** Asks the engine for a timer that sends `rollout.bake.elapsed` at `bakeUntil`. */
    armBake: () => {},
    nextStage: assign({
      stage: ({ context }) => context.stage + 1,
      bakeUntil: null,
      gateOverride: false,
    }),
    startBake: assign({
      bakeUntil: ({ context, event }) =>
        event.type === "rollout.stage.settled"
          ? event.at + context.plan.stages[context.stage]!.bake
          : null,
    }),
    pauseForOperator: assign({ pauseReason: { kind: "operator" } }),
    pauseForThreshold: assign({
      pauseReason: ({ event }) =>
        event.type === "rollout.threshold"
          ? { kind: "failure_threshold" as const, ...event.figures }
          : null,
    }),
    pauseForSuccess: assign({
      pauseReason: ({ event }) =>
        event.type === "rollout.stage.settled"
          ? { kind: "success_below_min" as const, ...event.figures }
          : null,
    }),
    haltForThreshold: assign({
      haltReason: ({ event }) =>
        event.type === "rollout.threshold"
          ? { kind: "failure_threshold" as const, ...event.figures }
          : null,
    }),
    haltForSuccess: assign({
      haltReason: ({ event }) =>
        event.type === "rollout.stage.settled"
          ? { kind: "success_below_min" as const, ...event.figures }
          : null,
    }),
    haltForDigest: assign({
      haltReason: ({ event }) => event.type === "rollout.halt" ? event.reason : null,
    }),
    clearPause: assign({
      gateOverride: ({ context }) => context.pauseReason?.kind === "success_below_min",
      pauseReason: null,
    }),
  },
  guards: {
    successReached: ({ context, event }) =>
      context.gateOverride ||
      (event.type === "rollout.stage.settled" &&
        event.figures.percent >= context.plan.minSuccessPercent),
    abortOnFailure: ({ context }) => context.plan.failureAction === "abort",
    twoPhase: ({ context }) => context.plan.activation === "stage",
    hasBake: ({ context }) => context.plan.stages[context.stage]!.bake > 0,
    needsApproval: ({ context }) => context.plan.stages[context.stage]!.approval === "manual",
    lastStage: ({ context }) => context.stage >= context.plan.stages.length - 1,
    bakeDone: ({ context, event }) =>
      event.type === "rollout.bake.elapsed" && event.at >= (context.bakeUntil ?? 0),
  },
}).createMachine({
  id: "rollout",
  context: ({ input }) => ({
    plan: input.plan,
    stage: 0,
    bakeUntil: null,
    pauseReason: null,
    haltReason: null,
    gateOverride: false,
  }),
  initial: "idle",
  states: {
    idle: {
      tags: "idle",
      on: {
        "rollout.start": {
          target: "active",
          actions: [report("rollout.started"), report("rollout.stage.started")],
        },
      },
    },
    active: {
      tags: "active",
      initial: "dispatching",
      on: {
        "rollout.pause": {
          target: "paused",
          actions: ["pauseForOperator", report("rollout.paused")],
        },
        "rollout.threshold": [
          {
            guard: "abortOnFailure",
            target: "halted",
            actions: ["haltForThreshold", report("rollout.halted")],
          },
          { target: "paused", actions: ["pauseForThreshold", report("rollout.paused")] },
        ],
        "rollout.halt": { target: "halted", actions: ["haltForDigest", report("rollout.halted")] },
        "rollout.cancel": { target: "cancelled", actions: report("rollout.cancelled") },
      },
      states: {
        history: { type: "history" },
        dispatching: {
          tags: ["dispatching", "sending"],
          on: {
            "rollout.stage.received": {
              guard: "twoPhase",
              target: "activating",
              actions: [report("rollout.stage.received"), report("rollout.stage.activating")],
            },
            "rollout.stage.settled": STAGE_GATE,
          },
        },
        activating: {
          tags: ["activating", "sending"],
          on: { "rollout.stage.settled": STAGE_GATE },
        },
        baking: {
          tags: "baking",
          entry: "armBake",
          on: {
            "rollout.bake.elapsed": [
              {
                guard: and(["bakeDone", "needsApproval"]),
                target: "waiting_approval",
                actions: [report("rollout.bake.completed"), report("rollout.approval.waiting")],
              },
              {
                guard: and(["bakeDone", "lastStage"]),
                target: "#rollout.completed",
                actions: [report("rollout.bake.completed"), report("rollout.completed")],
              },
              {
                guard: "bakeDone",
                target: "dispatching",
                actions: [report("rollout.bake.completed"), ...NEXT_STAGE],
              },
            ],
          },
        },
        waiting_approval: {
          tags: "waiting_approval",
          on: {
            "rollout.promote": [
              {
                guard: "lastStage",
                target: "#rollout.completed",
                actions: [report("rollout.promoted"), report("rollout.completed")],
              },
              { target: "dispatching", actions: [report("rollout.promoted"), ...NEXT_STAGE] },
            ],
          },
        },
      },
    },
    paused: {
      tags: "paused",
      on: {
        "rollout.resume": {
          target: "active.history",
          actions: [report("rollout.resumed"), "clearPause"],
        },
        "rollout.halt": { target: "halted", actions: ["haltForDigest", report("rollout.halted")] },
        "rollout.cancel": { target: "cancelled", actions: report("rollout.cancelled") },
      },
    },
    halted: { type: "final", tags: "halted" },
    cancelled: { type: "final", tags: "cancelled" },
    completed: { type: "final", tags: "completed" },
  },
});
