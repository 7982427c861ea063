import assert from "node:assert/strict";
import { createActor } from "xstate";
import { rolloutMachine, type RolloutPlan, type RolloutReport } from "../../actors/mod.ts";

function supervisor(plan: Partial<RolloutPlan> = {}) {
  const reports: RolloutReport[] = [];
  const logic = rolloutMachine.provide({
    actions: {
      report: (_, { type }: { type: RolloutReport }) => reports.push(type),
      armBake: () => {},
    },
  });
  const actor = createActor(logic, {
    input: {
      plan: {
        stages: [{ percent: 10, bake: 0, approval: "auto" }, {
          percent: 100,
          bake: 0,
          approval: "auto",
        }],
        activation: "immediate",
        minSuccessPercent: 90,
        failureAction: "pause",
        ...plan,
      },
    },
  }).start();
  actor.send({ type: "rollout.start" });
  return { actor, reports };
}

const settled = (percent: number, at = 0) => ({
  type: "rollout.stage.settled" as const,
  at,
  figures: { stage: 0, devices: 10, activated: percent / 10, percent, minPercent: 90 },
});

Deno.test("rollout machine: a settled stage moves to the next, the last completes", () => {
  const { actor, reports } = supervisor();
  actor.send(settled(100));
  assert.equal(actor.getSnapshot().context.stage, 1);
  actor.send(settled(95));
  assert.equal(actor.getSnapshot().value, "completed");
  assert.deepEqual(reports, [
    "rollout.started",
    "rollout.stage.started",
    "rollout.stage.completed",
    "rollout.stage.started",
    "rollout.stage.completed",
    "rollout.completed",
  ]);
});

Deno.test("rollout machine: resume returns to the state it paused in", () => {
  const { actor } = supervisor({
    stages: [{ percent: 10, bake: 60_000, approval: "auto" }, {
      percent: 100,
      bake: 0,
      approval: "auto",
    }],
  });
  actor.send(settled(100, 5));
  assert.deepEqual(actor.getSnapshot().value, { active: "baking" });
  assert.equal(actor.getSnapshot().context.bakeUntil, 60_005);
  actor.send({ type: "rollout.pause" });
  assert.equal(actor.getSnapshot().value, "paused");
  actor.send({ type: "rollout.resume" });
  assert.deepEqual(actor.getSnapshot().value, { active: "baking" });
  actor.send({ type: "rollout.bake.elapsed", at: 60_004 });
  assert.deepEqual(actor.getSnapshot().value, { active: "baking" }, "not before bakeUntil");
  actor.send({ type: "rollout.bake.elapsed", at: 60_005 });
  assert.deepEqual(actor.getSnapshot().value, { active: "dispatching" });
});

Deno.test("rollout machine: the persisted snapshot restores, history included", () => {
  const { actor } = supervisor();
  actor.send({ type: "rollout.pause" });
  const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
  const input = { plan: actor.getSnapshot().context.plan };
  const restored = createActor(rolloutMachine, { snapshot: persisted, input }).start();
  assert.equal(restored.getSnapshot().value, "paused");
  restored.send({ type: "rollout.resume" });
  assert.deepEqual(restored.getSnapshot().value, { active: "dispatching" });
});

Deno.test("rollout machine: a halt wins in every open state", () => {
  const reason = {
    kind: "digest_mismatch" as const,
    device: "d",
    status: 0xff,
    token: "00",
    stage: 0,
  };
  const { actor } = supervisor();
  actor.send({ type: "rollout.pause" });
  actor.send({ type: "rollout.halt", reason });
  assert.equal(actor.getSnapshot().value, "halted");
  assert.deepEqual(actor.getSnapshot().context.haltReason, reason);
  actor.send({ type: "rollout.resume" });
  assert.equal(actor.getSnapshot().value, "halted");
});
