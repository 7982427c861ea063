import assert from "node:assert/strict";
import { ACTIVATE_SUCCESS, ROLLBACK_UNAVAILABLE, UPDATE_SUCCESS } from "../../srup/mod.ts";
import { type Answer, HAPPY, harness } from "./_harness.ts";

/** A device told to roll back answers 0x10 after a second. */
const ROLLED_BACK: Answer = () => ({ status: ACTIVATE_SUCCESS });

Deno.test("a rollback rollout: one ROLLBACK per device, its 0x10 activates it, no ACTIVATE is sent", async (t) => {
  const h = harness({
    policy: `stages: [{percent: 20}, {percent: 100}]
concurrency: 3`,
    devices: 10,
    action: "rollback",
    answer: ROLLED_BACK,
  }).run();
  await t.step("every device activated through the stages", () => {
    assert.equal(h.engine.state, "completed");
    assert.equal(h.engine.summary().activated, 10);
    assert.equal(h.sendsOf("initiate").length, 10);
    assert.equal(h.sendsOf("activate").length, 0);
    assert.equal(h.eventsOf("rollout.stage.started").length, 2);
    assert.equal(h.eventsOf("device.received").length, 0);
  });
  await t.step("each device went initiated → activated with the 0x10 as its status", () => {
    for (const id of h.ids) {
      const types = h.events.filter((e) => "device" in e && e.device === id).map((e) => e.type);
      assert.deepEqual(types, ["device.initiated", "device.activated"]);
    }
    assert.ok(h.eventsOf("device.activated").every((e) => e.status === ACTIVATE_SUCCESS));
  });
  await t.step("stage 2 starts only once stage 1 settled, and concurrency holds", () => {
    const stage2 = h.eventsOf("rollout.stage.started")[1]!;
    const stage1Done = h.eventsOf("device.activated").filter((e) => e.stage === 0);
    assert.equal(stage1Done.length, 2);
    assert.ok(stage1Done.every((e) => e.seq < stage2.seq));
    assert.ok(h.sends.filter((s) => s.at === 0).length <= 2);
    assert.equal(h.sends.filter((s) => s.at === 1_000).length, 3);
  });
  await t.step("devicesIn() lists the activated devices in rollout order", () => {
    assert.deepEqual(h.engine.devicesIn("activated"), h.ids);
  });
});

Deno.test("a rollback rollout fails a device that answers 0x1E, and the failure threshold counts it", async (t) => {
  await t.step("0x1E: failed with its reason, never retried", () => {
    const h = harness({
      policy: "stages: [{percent: 100}]\nretry: { attempts: 3 }",
      devices: 4,
      action: "rollback",
      answer: (send) => ({ status: send.index === 2 ? ROLLBACK_UNAVAILABLE : ACTIVATE_SUCCESS }),
    }).run();
    // 3 of 4 is below the default success of 100%: the stage pauses as any rollout's would.
    assert.equal(h.engine.state, "paused");
    const failed = h.eventsOf("device.failed");
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.device, h.ids[2]);
    assert.equal(failed[0]!.reason, "ROLLBACK_UNAVAILABLE");
    assert.equal(h.sendsOf("initiate", 2).length, 1);
  });
  await t.step("an abort threshold halts it", () => {
    const h = harness({
      policy: `stages: [{percent: 100}]
concurrency: 1
failure: { maxPercent: 10, minDevices: 2, action: abort }`,
      devices: 10,
      action: "rollback",
      answer: (send) => ({ status: send.index < 2 ? ROLLBACK_UNAVAILABLE : ACTIVATE_SUCCESS }),
    }).run();
    assert.equal(h.engine.state, "halted");
    assert.equal(h.engine.summary().haltReason?.kind, "failure_threshold");
    assert.equal(h.sendsOf("initiate").length, 2);
  });
});

Deno.test("a rollback rollout retries a silent device with a new token after its backoff", () => {
  const h = harness({
    policy: `stages: [{percent: 100}]
timeouts: { response: 10s }
retry: { attempts: 3, backoff: 5s, maxBackoff: 5s, on: [timeout] }`,
    devices: 2,
    action: "rollback",
    answer: (send) => send.index === 1 && send.attempt === 1 ? null : ROLLED_BACK(send),
  }).run();
  assert.equal(h.engine.state, "completed");
  const sends = h.sendsOf("initiate", 1);
  assert.equal(sends.length, 2);
  assert.notEqual(sends[0]!.token, sends[1]!.token);
  assert.ok(sends[1]!.at >= 10_000 + 5_000 * 0.5, `retried at ${sends[1]!.at}`);
  assert.equal(h.eventsOf("device.retrying").length, 1);
  assert.equal(h.engine.summary().activated, 2);
});

Deno.test("an update rollout ignores a 0x10 to its INITIATE; a rollback one a 0x00 fails the device", async (t) => {
  await t.step("update: 0x10 while initiated is unexpected", () => {
    const h = harness({ policy: "stages: [{percent: 100}]", devices: 1 });
    h.engine.start();
    assert.equal(h.respond(0, ACTIVATE_SUCCESS), "unexpected");
    assert.equal(h.engine.summary().activated, 0);
  });
  await t.step("rollback: a 0x00, which no ROLLBACK is answered with, fails it", () => {
    const h = harness({ policy: "stages: [{percent: 100}]", devices: 1, action: "rollback" });
    h.engine.start();
    assert.equal(h.respond(0, UPDATE_SUCCESS), "accepted");
    assert.equal(h.eventsOf("device.failed").length, 1);
    assert.equal(h.sendsOf("activate").length, 0);
  });
});

Deno.test("a rollback rollout under two-phase activation completes without an ACTIVATE", () => {
  const h = harness({
    policy: "stages: [{percent: 50}, {percent: 100}]\nactivation: stage",
    devices: 4,
    action: "rollback",
    answer: ROLLED_BACK,
  }).run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.sendsOf("activate").length, 0);
  assert.equal(h.eventsOf("rollout.stage.received").length, 0);
});

Deno.test("a rollback rollout restored from a snapshot goes on as a rollback", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nconcurrency: 2",
    devices: 4,
    action: "rollback",
    answer: ROLLED_BACK,
  });
  h.engine.start();
  h.clock.run({ until: 1_000 });
  assert.equal(h.engine.summary().activated, 2);
  h.restore(h.engine.snapshot());
  h.run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().activated, 4);
  assert.equal(h.sendsOf("activate").length, 0);
  // The two in flight at the snapshot were answered by the restored engine: 0x10 activated them.
  assert.equal(h.eventsOf("device.activated").length, 4);
});

Deno.test("after a halt, devicesIn('activated') names the devices onAbort: rollback sends back", async (t) => {
  await t.step("a 0xFF in stage 2: stage 1's devices", () => {
    const h = harness({
      policy: "stages: [{percent: 50}, {percent: 100}]\nconcurrency: 1",
      devices: 6,
      answer: (send) =>
        send.index === 3 && send.kind === "initiate" ? { status: 0xff } : HAPPY(send),
    }).run();
    assert.equal(h.engine.state, "halted");
    assert.deepEqual(h.engine.devicesIn("activated"), h.ids.slice(0, 3));
  });
  await t.step("an abort threshold: the devices activated before it broke", () => {
    const h = harness({
      policy: `stages: [{percent: 100}]
concurrency: 1
retry: { attempts: 1 }
failure: { maxPercent: 20, minDevices: 4, action: abort }`,
      devices: 10,
      answer: (send) =>
        send.kind === "initiate" && (send.index === 1 || send.index === 3)
          ? { status: 0xfe }
          : HAPPY(send),
    }).run();
    assert.equal(h.engine.state, "halted");
    assert.equal(h.engine.summary().haltReason?.kind, "failure_threshold");
    assert.deepEqual(h.engine.devicesIn("activated"), [h.ids[0], h.ids[2]]);
  });
});
