import assert from "node:assert/strict";
import { RolloutCommandError } from "../../actors/mod.ts";
import { HAPPY, harness } from "./_harness.ts";

const CANARY = `stages: [{percent: 10}, {percent: 100}]
concurrency: 4
retry: { attempts: 3, backoff: 1s }`;

Deno.test("an 0xFF in stage 0 stops the rollout before stage 1 starts", async (t) => {
  const h = harness({
    policy: CANARY,
    devices: 100,
    answer: (send) =>
      send.index === 6 && send.kind === "initiate" ? { status: 0xff, after: 2_500 } : HAPPY(send),
  }).run();
  const halted = h.eventsOf("rollout.halted");
  await t.step("the rollout halts with the device and status recorded", () => {
    assert.equal(h.engine.state, "halted");
    assert.equal(halted.length, 1);
    const device6 = h.ids[6]!;
    const reason = {
      kind: "digest_mismatch",
      device: device6,
      status: 0xff,
      token: h.sendsOf("initiate", 6)[0]!.token,
      stage: 0,
    };
    assert.deepEqual(h.engine.summary().haltReason, reason);
    assert.deepEqual(halted[0]!.haltReason, reason);
    const failed = h.eventsOf("device.failed");
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.device, device6);
    assert.equal(failed[0]!.status, 0xff);
    assert.equal(failed[0]!.reason, "UPDATE_FAIL_DIGEST");
  });
  await t.step("stage 1 never starts and nothing is sent after the 0xFF", () => {
    assert.equal(h.eventsOf("rollout.stage.started").length, 1);
    const failedSeq = h.eventsOf("device.failed")[0]!.seq;
    assert.deepEqual(h.sends.filter((s) => s.seq > failedSeq), []);
    assert.ok(h.sends.every((s) => s.index < 10), "only stage 0 devices were contacted");
  });
  await t.step("devices in flight are cancelled and late answers are ignored", () => {
    const summary = h.engine.summary();
    assert.equal(summary.inFlight, 0);
    assert.ok(summary.counts.cancelled > 0);
    const contacted = new Set(h.sends.map((s) => s.index)).size;
    assert.equal(summary.counts.pending, 100 - contacted);
    assert.equal(summary.counts.activated + summary.counts.cancelled + 1, contacted);
    assert.ok(summary.ignored.notInFlight > 0, "answers that arrive after the halt are counted");
  });
  await t.step("a halted rollout refuses resume", () => {
    assert.throws(() => h.engine.resume(), RolloutCommandError);
    assert.throws(() => h.engine.cancel(), /Cannot cancel rollout: it is "halted"/);
  });
});

Deno.test("an 0xFF for an earlier attempt's token still halts", () => {
  const h = harness({ policy: CANARY, devices: 10 });
  h.engine.start();
  const first = h.token(0)!;
  h.respond(0, 0xfd);
  h.clock.run({ until: 2_000 });
  assert.equal(h.sendsOf("initiate", 0).length, 2, "device 0 was retried");
  assert.equal(h.engine.response(h.ids[0]!, first, 0xfd), "stale_token");
  assert.equal(h.engine.response(h.ids[0]!, first, 0xff), "accepted");
  assert.equal(h.engine.state, "halted");
  assert.equal(h.engine.summary().haltReason?.kind, "digest_mismatch");
  assert.equal((h.engine.summary().haltReason as { token: string }).token, first.toHex());
});

Deno.test("an 0xFF while paused halts, and nothing goes out on resume", () => {
  const h = harness({ policy: CANARY, devices: 40 });
  h.engine.start();
  h.engine.pause();
  const sent = h.sends.length;
  assert.equal(sent, 4);
  h.respond(1, 0xff);
  assert.equal(h.engine.state, "halted");
  h.clock.run();
  assert.equal(h.sends.length, sent);
  assert.equal(h.engine.shouldSend(h.ids[0]!, h.token(0)!), false);
});
