import assert from "node:assert/strict";
import { stageEnds, stageOf } from "../../actors/mod.ts";
import { HAPPY, harness } from "./_harness.ts";

Deno.test("stageEnds() gives stage k the first ceil(percent_k% × n) devices", () => {
  assert.deepEqual(stageEnds([1, 10, 50, 100], 1000), [10, 100, 500, 1000]);
  assert.deepEqual(stageEnds([1, 10, 50, 100], 150), [2, 15, 75, 150]);
  assert.deepEqual(stageEnds([1, 100], 300), [3, 300], "1% of 300 is 3, not 4");
  assert.deepEqual(stageEnds([1, 10, 100], 0), [0, 0, 0]);
  assert.deepEqual(stageEnds([33.3, 100], 10), [4, 10]);
});

Deno.test("stageOf() finds the stage of a device index", () => {
  const ends = [10, 100, 500, 1000];
  assert.equal(stageOf(ends, 0), 0);
  assert.equal(stageOf(ends, 9), 0);
  assert.equal(stageOf(ends, 10), 1);
  assert.equal(stageOf(ends, 499), 2);
  assert.equal(stageOf(ends, 999), 3);
});

Deno.test("a rollout starts stages in order, each with its own devices, and completes", () => {
  const h = harness({
    policy: "stages: [{percent: 10}, {percent: 50}, {percent: 100}]\nconcurrency: 5",
    devices: 40,
    answer: HAPPY,
  }).run();
  assert.equal(h.engine.state, "completed");
  const started = h.eventsOf("rollout.stage.started");
  assert.deepEqual(started.map((e) => e.figures), [
    { percent: 10, devices: 4, first: 0, end: 4 },
    { percent: 50, devices: 16, first: 4, end: 20 },
    { percent: 100, devices: 20, first: 20, end: 40 },
  ]);
  // Every device of a stage is initiated after its stage started and before the next one did.
  for (const send of h.sendsOf("initiate")) {
    const stage = send.index < 4 ? 0 : send.index < 20 ? 1 : 2;
    assert.ok(send.seq > started[stage]!.seq);
    if (stage < 2) assert.ok(send.seq < started[stage + 1]!.seq);
  }
  const summary = h.engine.summary();
  assert.deepEqual(summary.stages.map((s) => [s.devices, s.activated, s.failed]), [
    [4, 4, 0],
    [16, 16, 0],
    [20, 20, 0],
  ]);
  assert.deepEqual(summary.attempts, { "1": 40 });
  assert.equal(h.eventsOf("rollout.completed").length, 1);
});

Deno.test("the concurrency cap bounds devices in flight", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nconcurrency: 3",
    devices: 20,
    answer: HAPPY,
  });
  h.engine.start();
  assert.equal(h.sendsOf("initiate").length, 3, "three INITIATEs before any answer");
  assert.equal(h.engine.summary().inFlight, 3);
  h.clock.run();
  assert.equal(h.engine.summary().activated, 20);
  let live = 0;
  let peak = 0;
  for (const event of h.events) {
    if (event.type === "device.initiated") peak = Math.max(peak, ++live);
    if (event.type === "device.activated") live--;
  }
  assert.equal(peak, 3, "a device holds its slot until its activation is confirmed");
});
