import assert from "node:assert/strict";
import { HAPPY, harness } from "./_harness.ts";

/** Devices whose index is in `bad` fail every INITIATE with 0xFE; the rest succeed. */
function failing(bad: (index: number) => boolean) {
  return (send: Parameters<typeof HAPPY>[0]) =>
    send.kind === "initiate" && bad(send.index) ? { status: 0xfe } : HAPPY(send);
}

Deno.test("the failure threshold pauses the rollout", async (t) => {
  const h = harness({
    policy: `stages: [{percent: 100}]
concurrency: 1
success: { minPercent: 80 }
retry: { attempts: 1 }
failure: { maxPercent: 20, minDevices: 5, action: pause }`,
    devices: 20,
    answer: failing((index) => index === 1 || index === 3),
  }).run();
  await t.step("it pauses once enough devices finished and too many failed", () => {
    assert.equal(h.engine.state, "paused");
    // After device 4: 5 finished, 2 failed = 40% > 20%. Device 1 alone (1 of 2) is below minDevices.
    assert.deepEqual(h.engine.summary().pauseReason, {
      kind: "failure_threshold",
      scope: "stage",
      stage: 0,
      failed: 2,
      finished: 5,
      percent: 40,
      maxPercent: 20,
    });
    assert.equal(h.sendsOf("initiate").length, 5, "no device started after the pause");
  });
  await t.step("resume measures the threshold from the resume on", () => {
    h.engine.resume();
    h.run();
    assert.equal(h.engine.state, "completed");
    assert.equal(h.engine.summary().activated, 18);
    assert.equal(h.eventsOf("rollout.resumed").length, 1);
  });
});

Deno.test("the failure threshold aborts the rollout when its action is abort", () => {
  const h = harness({
    policy: `stages: [{percent: 50}, {percent: 100}]
concurrency: 2
retry: { attempts: 1 }
failure: { maxPercent: 10, minDevices: 3, action: abort, scope: overall }`,
    devices: 20,
    answer: failing((index) => index % 4 === 0),
  }).run();
  assert.equal(h.engine.state, "halted");
  const reason = h.engine.summary().haltReason!;
  assert.equal(reason.kind, "failure_threshold");
  assert.equal((reason as { scope: string }).scope, "overall");
  assert.equal(h.eventsOf("rollout.stage.started").length, 1);
  assert.equal(h.engine.summary().inFlight, 0);
});

Deno.test("failures below minDevices never trip the threshold", () => {
  const h = harness({
    policy: `stages: [{percent: 100}]
success: { minPercent: 0 }
retry: { attempts: 1 }
failure: { maxPercent: 10, minDevices: 50, action: pause }`,
    devices: 10,
    answer: failing((index) => index < 5),
  }).run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().failed, 5);
});
