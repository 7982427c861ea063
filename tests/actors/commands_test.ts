import assert from "node:assert/strict";
import { RolloutCommandError } from "../../actors/mod.ts";
import { HAPPY, harness } from "./_harness.ts";

const POLICY = "stages: [{percent: 50}, {percent: 100}]\nconcurrency: 3";

Deno.test("pause stops new work; resume carries on to completion", async (t) => {
  const h = harness({ policy: POLICY, devices: 12, answer: HAPPY });
  h.engine.start();
  await t.step("pause: answers are still taken, but no INITIATE or ACTIVATE goes out", () => {
    h.engine.pause();
    assert.equal(h.engine.state, "paused");
    assert.deepEqual(h.engine.summary().pauseReason, { kind: "operator" });
    const sent = h.sends.length;
    h.clock.run();
    assert.equal(h.sends.length, sent, "nothing sent while paused");
    assert.equal(h.engine.summary().counts.received, 3, "the 0x00 answers were recorded");
  });
  await t.step("resume: held ACTIVATEs go out and the rollout completes", () => {
    h.engine.resume();
    assert.equal(h.sendsOf("activate").length, 3);
    h.run();
    assert.equal(h.engine.state, "completed");
    assert.equal(h.engine.summary().activated, 12);
  });
});

Deno.test("a retry whose backoff ends during a pause waits for resume", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nretry: { attempts: 2, backoff: 10s }",
    devices: 1,
    answer: (send) => send.attempt === 1 ? { status: 0xfd } : HAPPY(send),
  });
  h.engine.start();
  h.clock.run({ until: 1_000 });
  h.engine.pause();
  h.clock.advance(3_600_000 - h.clock.now());
  assert.equal(h.sendsOf("initiate").length, 1);
  h.engine.resume();
  assert.equal(h.sendsOf("initiate").length, 2);
  assert.equal(h.sendsOf("initiate")[1]!.at, 3_600_000);
  h.run();
  assert.equal(h.engine.state, "completed");
});

Deno.test("cancel mid-stage stops all work and leaves devices as they are", async (t) => {
  const h = harness({ policy: POLICY, devices: 12, answer: HAPPY });
  h.engine.start();
  h.clock.run({ until: 2_500 });
  const before = h.engine.summary();
  await t.step("some devices are activated, some in flight, some pending", () => {
    assert.ok(before.activated > 0);
    assert.ok(before.inFlight > 0);
    assert.ok(before.counts.pending > 0);
  });
  await t.step("cancel", () => {
    const sent = h.sends.length;
    h.engine.cancel();
    assert.equal(h.engine.state, "cancelled");
    h.clock.run();
    assert.equal(h.sends.length, sent, "nothing sent after the cancel");
    const after = h.engine.summary();
    assert.equal(after.activated, before.activated, "activated devices stay activated");
    assert.equal(after.counts.cancelled, before.inFlight, "devices in flight are cancelled");
    assert.equal(after.counts.pending, before.counts.pending, "pending devices stay pending");
    assert.equal(after.inFlight, 0);
    const cancelled = h.eventsOf("device.cancelled");
    assert.ok(cancelled.every((e) => e.from === "initiated" || e.from === "activating"));
    assert.ok(after.ignored.notInFlight > 0, "answers arriving after the cancel are ignored");
  });
  await t.step("commands after cancel are refused with a specific code", () => {
    for (const command of ["pause", "resume", "promote", "cancel"] as const) {
      assert.throws(() => h.engine[command](), RolloutCommandError, command);
    }
    try {
      h.engine.pause();
    } catch (error) {
      assert.equal((error as RolloutCommandError).code, "not_running");
      assert.equal((error as RolloutCommandError).state, "cancelled");
    }
  });
});

Deno.test("commands before start and a second start are refused", () => {
  const h = harness({ policy: POLICY, devices: 4 });
  assert.equal(h.engine.state, "created");
  assert.throws(
    () => h.engine.pause(),
    (e: unknown) => (e as RolloutCommandError).code === "not_started",
  );
  assert.throws(
    () => h.engine.cancel(),
    (e: unknown) => (e as RolloutCommandError).code === "not_started",
  );
  h.engine.start();
  assert.throws(
    () => h.engine.start(),
    (e: unknown) => (e as RolloutCommandError).code === "already_started",
  );
  assert.throws(
    () => h.engine.resume(),
    (e: unknown) => (e as RolloutCommandError).code === "not_paused",
  );
});
