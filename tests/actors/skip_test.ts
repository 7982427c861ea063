import assert from "node:assert/strict";
import { HAPPY, harness } from "./_harness.ts";

const POLICY = `stages: [{percent: 50}, {percent: 100}]
success: { minPercent: 100 }
failure: { maxPercent: 10, minDevices: 1, action: abort }`;

Deno.test("devices that already run the artifact are skipped: counted, never contacted", () => {
  const h = harness({ policy: POLICY, devices: 6, skip: [1, 4], answer: HAPPY }).run();
  assert.equal(h.engine.state, "completed");
  const contacted = new Set(h.sends.map((send) => send.index));
  assert.deepEqual([...contacted].sort(), [0, 2, 3, 5]);
  const summary = h.engine.summary();
  assert.equal(summary.counts.skipped, 2);
  assert.equal(summary.counts.activated, 4);
  assert.deepEqual(summary.stages.map((stage) => stage.skipped), [1, 1]);
  assert.deepEqual(h.eventsOf("rollout.stage.completed").map((e) => e.figures.activated), [2, 2]);
  assert.equal(h.events.filter((e) => "device" in e && e.device === h.ids[1]).length, 0);
});

Deno.test("a stage whose devices all run the artifact passes its success gate", () => {
  const h = harness({ policy: POLICY, devices: 4, skip: [0, 1], answer: HAPPY }).run();
  assert.equal(h.engine.state, "completed");
  assert.deepEqual([...new Set(h.sends.map((send) => send.index))], [2, 3]);
});

Deno.test("skipped devices stay skipped across a snapshot and restore", () => {
  const h = harness({ policy: "stages: [{percent: 100}]", devices: 4, skip: [2] });
  h.engine.start();
  h.respond(0, 0x00);
  const snapshot = h.engine.snapshot();
  assert.ok(snapshot.devices.every((record) => record.id !== h.ids[2]));
  h.restore(snapshot);
  assert.equal(h.engine.summary().counts.skipped, 1);
  h.engine.start();
  h.respond(0, 0x10);
  for (const index of [1, 3]) {
    h.respond(index, 0x00);
    h.respond(index, 0x10);
  }
  assert.equal(h.engine.state, "completed");
  assert.equal(h.sendsOf("initiate", 2).length, 0);
});
