import assert from "node:assert/strict";
import { RolloutCommandError } from "../../actors/mod.ts";
import { HAPPY, harness } from "./_harness.ts";

Deno.test("a stage bakes for its bake time before the next stage starts", () => {
  const h = harness({
    policy: "stages: [{percent: 10, bake: 10m}, {percent: 100}]",
    devices: 20,
    answer: HAPPY,
  }).run();
  assert.equal(h.engine.state, "completed");
  const completed = h.eventsOf("rollout.stage.completed")[0]!;
  const bake = h.eventsOf("rollout.bake.started")[0]!;
  const next = h.eventsOf("rollout.stage.started")[1]!;
  assert.equal(bake.deadline, completed.at + 600_000);
  assert.equal(next.at, completed.at + 600_000);
  assert.equal(h.eventsOf("rollout.bake.completed")[0]!.at, next.at);
  assert.ok(h.sendsOf("initiate").filter((s) => s.index >= 2).every((s) => s.at >= next.at));
});

Deno.test("manual approval waits for promote, then the next stage starts", async (t) => {
  const h = harness({
    policy: "stages: [{percent: 10, approval: manual}, {percent: 100}]",
    devices: 20,
    answer: HAPPY,
  }).run();
  await t.step("the rollout waits after stage 0", () => {
    assert.equal(h.engine.state, "waiting_approval");
    assert.equal(h.eventsOf("rollout.approval.waiting").length, 1);
    assert.equal(h.sendsOf("initiate").length, 2);
    h.clock.advance(3_600_000);
    assert.equal(h.sendsOf("initiate").length, 2, "nothing happens without a promote");
  });
  await t.step("promote starts stage 1", () => {
    h.engine.promote();
    assert.equal(h.eventsOf("rollout.promoted").length, 1);
    assert.equal(h.engine.state, "running");
    h.run();
    assert.equal(h.engine.state, "completed");
    assert.equal(h.engine.summary().activated, 20);
  });
  await t.step("promote when nothing waits is refused", () => {
    assert.throws(() => h.engine.promote(), (error: unknown) => {
      assert.ok(error instanceof RolloutCommandError);
      assert.equal(error.code, "not_waiting_approval");
      assert.equal(error.message, 'Cannot promote rollout: it is "completed"');
      return true;
    });
  });
});

Deno.test("bake then approval: approval waits until the bake is over", () => {
  const h = harness({
    policy: "stages: [{percent: 10, bake: 5m, approval: manual}, {percent: 100}]",
    devices: 10,
    answer: HAPPY,
  }).run();
  assert.equal(h.engine.state, "waiting_approval");
  const completed = h.eventsOf("rollout.stage.completed")[0]!;
  assert.equal(h.eventsOf("rollout.approval.waiting")[0]!.at, completed.at + 300_000);
});

Deno.test("a stage below success.minPercent pauses; resume lets it pass", () => {
  const h = harness({
    policy: `stages: [{percent: 50}, {percent: 100}]
success: { minPercent: 90 }
retry: { attempts: 1 }`,
    devices: 10,
    answer: (send) => ({
      status: send.index === 0 && send.kind === "initiate" ? 0xfe : HAPPY(send)!.status,
    }),
  }).run();
  assert.equal(h.engine.state, "paused");
  assert.deepEqual(h.engine.summary().pauseReason, {
    kind: "success_below_min",
    stage: 0,
    devices: 5,
    activated: 4,
    percent: 80,
    minPercent: 90,
  });
  assert.equal(h.eventsOf("rollout.stage.started").length, 1);
  h.engine.resume();
  h.run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().activated, 9);
});

Deno.test("a stage below success.minPercent halts when the failure action is abort", () => {
  const h = harness({
    policy: `stages: [{percent: 50}, {percent: 100}]
success: { minPercent: 90 }
failure: { maxPercent: 100, action: abort }
retry: { attempts: 1 }`,
    devices: 10,
    answer: (send) => ({
      status: send.index === 0 && send.kind === "initiate" ? 0xfe : HAPPY(send)!.status,
    }),
  }).run();
  assert.equal(h.engine.state, "halted");
  assert.equal(h.engine.summary().haltReason?.kind, "success_below_min");
  assert.equal(h.engine.summary().counts.pending, 5);
});
