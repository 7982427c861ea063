import assert from "node:assert/strict";
import { RolloutCommandError } from "../../actors/mod.ts";
import { SimClock } from "../../sim/mod.ts";
import { HAPPY, harness } from "./_harness.ts";

const TWO_STAGES = "stages: [{percent: 50}, {percent: 100}]";

Deno.test("join() appends a device to the last stage: counted there, started with that stage", () => {
  const h = harness({ policy: TWO_STAGES, devices: 4, answer: HAPPY });
  h.engine.start();
  const index = h.join();
  assert.equal(index, 4);
  const summary = h.engine.summary();
  assert.equal(summary.devices, 5);
  assert.deepEqual(summary.stages.map((stage) => stage.devices), [2, 3], "no boundary moved");
  assert.deepEqual(summary.stages.map((stage) => stage.pending), [0, 3]);
  assert.equal(h.sendsOf("initiate", 4).length, 0, "not started while the first stage runs");
  h.run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.sendsOf("initiate", 4).length, 1);
  assert.equal(h.sendsOf("activate", 4).length, 1);
  assert.equal(h.engine.summary().activated, 5);
  const completed = h.eventsOf("rollout.stage.completed");
  assert.deepEqual(completed.map((e) => [e.figures.devices, e.figures.activated]), [[2, 2], [
    3,
    3,
  ]]);
});

Deno.test("a device that joins while the last stage dispatches is started at once", () => {
  const h = harness({ policy: "stages: [{percent: 100}]", devices: 2, answer: HAPPY });
  h.engine.start();
  h.clock.advance(500);
  assert.equal(h.sendsOf("initiate").length, 2);
  const index = h.join();
  const sent = h.sendsOf("initiate", index);
  assert.equal(sent.length, 1, "INITIATE on join");
  assert.equal(sent[0]!.at, 500);
  h.run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().counts.activated, 3);
});

Deno.test("a joining device that already runs the artifact is skipped: counted, never contacted", () => {
  const h = harness({ policy: "stages: [{percent: 100}]", devices: 2, answer: HAPPY });
  h.engine.start();
  const index = h.join({ skipped: true });
  h.run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.sendsOf("initiate", index).length, 0);
  assert.equal(h.engine.summary().counts.skipped, 1);
  assert.equal(h.engine.summary().stages[0]!.skipped, 1);
});

Deno.test("join() refuses a device already in the rollout", () => {
  const h = harness({ policy: TWO_STAGES, devices: 2 });
  h.engine.start();
  assert.throws(() => h.engine.join(h.ids[1]!), RangeError);
  assert.equal(h.engine.summary().devices, 2);
});

Deno.test("a rollout past its last stage's dispatch takes no device: it stays as it is", async (t) => {
  await t.step("completed", () => {
    const h = harness({ policy: TWO_STAGES, devices: 2, answer: HAPPY }).run();
    assert.equal(h.engine.state, "completed");
    assert.equal(h.engine.joinable, false);
    assert.throws(
      () => h.join(),
      (error) => error instanceof RolloutCommandError && error.code === "finished",
    );
    assert.equal(h.engine.state, "completed");
    assert.equal(h.engine.summary().devices, 2);
  });
  await t.step("baking its last stage, and paused while baking", () => {
    const h = harness({ policy: "stages: [{percent: 100, bake: 1h}]", devices: 1, answer: HAPPY });
    h.engine.start();
    h.clock.run({ until: 10_000 });
    assert.equal(h.engine.phase, "baking");
    assert.equal(h.engine.joinable, false);
    h.engine.pause();
    assert.equal(h.engine.joinable, false, "resuming goes back to the bake");
    h.restore(h.engine.snapshot());
    assert.equal(h.engine.phase, "paused");
    assert.equal(h.engine.joinable, false, "restored, it still resumes to the bake");
  });
  await t.step("paused while dispatching its last stage: it joins", () => {
    const h = harness({ policy: "stages: [{percent: 100}]", devices: 2 });
    h.engine.start();
    h.engine.pause();
    assert.equal(h.engine.joinable, true);
    const index = h.join();
    assert.equal(h.sendsOf("initiate", index).length, 0, "nothing goes out while paused");
    h.engine.resume();
    assert.equal(h.sendsOf("initiate", index).length, 1);
  });
});

Deno.test("a device that joins a two-phase last stage while it activates is started and activated", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nactivation: stage",
    devices: 2,
    answer: HAPPY,
  });
  h.engine.start();
  h.clock.run({ until: 1_000 });
  assert.equal(h.engine.phase, "activating");
  const index = h.join();
  assert.equal(h.sendsOf("initiate", index).length, 1);
  h.run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.sendsOf("activate", index).length, 1);
  assert.equal(h.engine.summary().activated, 3);
});

Deno.test("joined devices survive a snapshot and restore, still in the last stage", () => {
  const h = harness({ policy: "stages: [{percent: 50}, {percent: 100}]", devices: 4 });
  h.engine.start();
  h.join();
  h.join();
  h.respond(0, 0x00);
  const snapshot = h.engine.snapshot();
  h.restore(snapshot);
  const summary = h.engine.summary();
  assert.equal(summary.devices, 6);
  assert.deepEqual(summary.stages.map((stage) => stage.devices), [2, 4]);
  h.engine.start();
  h.respond(0, 0x10);
  h.respond(1, 0x00);
  h.respond(1, 0x10);
  for (const index of [2, 3, 4, 5]) {
    h.respond(index, 0x00);
    h.respond(index, 0x10);
  }
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().activated, 6);
});

Deno.test("a joined device waits for its own maintenance window, and is counted waiting", () => {
  const start = Date.parse("2026-01-10T00:10:00Z");
  const h = harness({
    policy: `stages: [{ percent: 100 }]
windows:
  by: site
  groups:
    berlin: [{ start: "0 1 * * *", duration: 1h, timeZone: Europe/Berlin }]
    tokyo: [{ start: "0 1 * * *", duration: 1h, timeZone: Asia/Tokyo }]`,
    devices: 2,
    windowGroups: [0, 0],
    answer: HAPPY,
    clock: new SimClock(start),
  });
  h.engine.start();
  assert.equal(h.sendsOf("initiate").length, 2, "Berlin's window is open");
  const tokyo = h.join({ windowGroup: 1 });
  const berlin = h.join({ windowGroup: 0 });
  assert.equal(h.sendsOf("initiate", berlin).length, 1, "its window is open: at once");
  assert.equal(h.sendsOf("initiate", tokyo).length, 0, "Tokyo's window is closed");
  const windows = h.engine.summary().windows!;
  assert.deepEqual(windows.groups.map((g) => [g.group, g.waiting]), [["berlin", 0], ["tokyo", 1]]);
  h.restore(h.engine.snapshot());
  h.engine.start();
  h.clock.run();
  assert.equal(h.engine.state, "completed");
  const sent = h.sendsOf("initiate", tokyo);
  assert.deepEqual(sent.map((s) => new Date(s.at).toISOString()), ["2026-01-10T16:00:00.000Z"]);
  assert.equal(h.engine.summary().activated, 4);
});
