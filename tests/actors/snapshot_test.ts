import assert from "node:assert/strict";
import { createRolloutEngine, type RolloutSnapshot } from "../../actors/mod.ts";
import { SimClock } from "../../sim/mod.ts";
import { type Answer, HAPPY, harness, policyOf } from "./_harness.ts";

const POLICY = `stages: [{percent: 10, bake: 1m}, {percent: 50}, {percent: 100}]
concurrency: 8
success: { minPercent: 80 }
retry: { attempts: 3, backoff: 20s }
timeouts: { response: 1m, activation: 1m }`;

/** Faults fixed per device and attempt, so two runs differ only in what the test does to them. */
function faulty(): Answer {
  const silenced = new Set<number>();
  return (send) => {
    if (send.kind === "initiate" && send.attempt === 1 && send.index % 7 === 3) {
      return { status: 0xfd };
    }
    if (send.kind === "initiate" && send.index % 13 === 5) return { status: 0xfe };
    if (send.kind === "activate" && send.index % 11 === 4 && !silenced.has(send.index)) {
      silenced.add(send.index);
      return null;
    }
    return { ...HAPPY(send)!, after: 500 + (send.index % 5) * 400 };
  };
}

function finalFigures(h: ReturnType<typeof harness>) {
  const s = h.engine.summary();
  return { state: s.state, counts: s.counts, stages: s.stages };
}

Deno.test("snapshot and restore mid-flight continue to the same final result", async (t) => {
  const reference = harness({ policy: POLICY, devices: 60, answer: faulty() }).run();
  assert.equal(reference.engine.state, "completed");
  const figures = reference.engine.summary();
  assert.ok(figures.failed > 0 && figures.attempts["2"]! > 0 && figures.attempts["3"]! > 0);
  assert.ok(reference.eventsOf("device.timed_out").length > 0);
  const h = harness({ policy: POLICY, devices: 60, answer: faulty() });
  h.engine.start();
  h.clock.run({ until: 150_000 });
  let snapshot!: RolloutSnapshot;
  await t.step("the snapshot is plain, flat JSON", () => {
    snapshot = h.engine.snapshot();
    assert.equal(snapshot.format, 1);
    assert.deepEqual(JSON.parse(JSON.stringify(snapshot)), snapshot);
    const states = new Set(snapshot.devices.map((d) => d.state));
    assert.ok(states.has("initiated") || states.has("activating"), "devices are in flight");
    for (const record of snapshot.devices) {
      assert.deepEqual(Object.keys(record), [
        "id",
        "state",
        "token",
        "attempt",
        "deadline",
        "lastStatus",
      ]);
      assert.match(record.token, /^[0-9a-f]{32}$/);
      const open = ["initiated", "activating", "retrying"].includes(record.state);
      assert.equal(record.deadline !== null, open, `${record.state} has a deadline`);
    }
    assert.equal(snapshot.devices.length, snapshot.cursor, "every started device has a record");
  });
  await t.step("restore re-sends nothing to devices already initiated", () => {
    const initiated = new Set(
      snapshot.devices.filter((d) => d.state === "initiated").map((d) => d.id),
    );
    const sent = h.sends.length;
    h.restore(snapshot);
    h.engine.start();
    assert.equal(h.eventsOf("rollout.restored").length, 1);
    assert.ok(h.sends.slice(sent).every((s) => !initiated.has(s.device)));
  });
  await t.step("the restored rollout ends exactly as the uninterrupted one", () => {
    h.run();
    assert.deepEqual(finalFigures(h), finalFigures(reference));
  });
});

Deno.test("restore keeps a bake's absolute deadline", () => {
  const h = harness({ policy: POLICY, devices: 20, answer: HAPPY });
  h.engine.start();
  h.clock.run({ until: 10_000 });
  assert.equal(h.engine.phase, "baking");
  const until = h.engine.summary().bakeUntil!;
  const snapshot = h.engine.snapshot();
  h.engine.stop();
  h.clock.advance(20_000);
  h.restore(snapshot);
  h.engine.start();
  h.clock.run({ until: until - 1 });
  assert.equal(h.engine.phase, "baking");
  h.clock.run({ until });
  assert.equal(h.engine.phase, "dispatching");
  assert.equal(h.eventsOf("rollout.bake.completed").at(-1)!.at, until);
});

Deno.test("restore keeps a pause, and expired deadlines fire at once", () => {
  const h = harness({ policy: POLICY, devices: 20 });
  h.engine.start();
  h.engine.pause();
  const snapshot = h.engine.snapshot();
  h.engine.stop();
  h.clock.advance(120_000);
  h.restore(snapshot);
  h.engine.start();
  assert.equal(h.engine.state, "paused");
  h.clock.run({ until: h.clock.now() });
  assert.equal(h.eventsOf("device.timed_out").length, 2, "both INITIATEs timed out while down");
  assert.equal(h.engine.summary().counts.retrying, 2);
});

Deno.test("resendPendingActivations() re-sends ACTIVATE with the same token after a restore", () => {
  const h = harness({ policy: "stages: [{percent: 100}]\nconcurrency: 2", devices: 2 });
  h.engine.start();
  h.respond(0, 0x00);
  const snapshot = h.engine.snapshot();
  const record = snapshot.devices.find((d) => d.state === "activating")!;
  assert.ok(record);
  h.restore(snapshot);
  h.engine.start();
  const sent = h.sends.length;
  assert.equal(h.engine.resendPendingActivations(), 1);
  const resent = h.sends.slice(sent);
  assert.deepEqual(resent.map((s) => [s.kind, s.device, s.token]), [[
    "activate",
    record.id,
    record.token,
  ]]);
  assert.equal(h.eventsOf("device.activating").at(-1)!.resent, true);
  assert.equal(h.engine.response(record.id, Uint8Array.fromHex(record.token), 0x10), "accepted");
  assert.equal(h.engine.summary().activated, 1);
});

Deno.test("restore in a two-phase activation phase activates each received device once", () => {
  const policy = "stages: [{percent: 100}]\nconcurrency: 2\nactivation: stage";
  const h = harness({ policy, devices: 6, answer: HAPPY });
  h.engine.start();
  h.clock.run({ until: 3_000 });
  assert.equal(h.engine.phase, "activating");
  h.restore(h.engine.snapshot());
  h.engine.start();
  h.run();
  assert.equal(h.engine.state, "completed");
  const activated = h.eventsOf("device.activated").map((e) => e.device);
  assert.equal(new Set(activated).size, 6);
  assert.equal(activated.length, 6);
});

Deno.test("restore refuses a snapshot of another rollout, policy or fleet", () => {
  const h = harness({ policy: POLICY, devices: 20 });
  h.engine.start();
  const snapshot = h.engine.snapshot();
  const base = {
    id: "r1",
    devices: h.ids,
    clock: new SimClock(),
    ports: { initiate() {}, activate() {}, event() {} },
  };
  assert.throws(
    () => createRolloutEngine({ ...base, id: "r2", policy: h.policy, snapshot }),
    /Cannot restore rollout "r2": the snapshot is of "r1"/,
  );
  assert.throws(
    () => createRolloutEngine({ ...base, policy: policyOf("stages: [{percent: 100}]"), snapshot }),
    /its policy has changed/,
  );
  assert.throws(
    () => createRolloutEngine({ ...base, devices: h.ids.slice(1), policy: h.policy, snapshot }),
    /unknown device "00000000-0000-4000-8000-000000000000"/,
  );
  const broken = { ...snapshot, devices: [{ ...snapshot.devices[0]!, token: "zz" }] };
  assert.throws(
    () => createRolloutEngine({ ...base, policy: h.policy, snapshot: broken }),
    (error: unknown) => error instanceof TypeError && /"devices.0.token"/.test(error.message),
  );
});
