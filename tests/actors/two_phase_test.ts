import assert from "node:assert/strict";
import { HAPPY, harness } from "./_harness.ts";

Deno.test("two-phase activation: every device of a stage receives before the stage activates", () => {
  const h = harness({
    policy: `stages: [{percent: 25}, {percent: 100}]
concurrency: 3
activation: stage`,
    devices: 20,
    answer: (send) => ({ ...HAPPY(send)!, after: 1_000 + send.index * 100 }),
  }).run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().activated, 20);
  const ends = [5, 20];
  for (const [stage, end] of ends.entries()) {
    const start = stage === 0 ? 0 : ends[stage - 1]!;
    const inStage = (index: number) => index >= start && index < end;
    const received = h.eventsOf("device.received").filter((e) => inStage(h.ids.indexOf(e.device!)));
    const activates = h.sendsOf("activate").filter((s) => inStage(s.index));
    assert.equal(received.length, end - start);
    assert.equal(activates.length, end - start);
    const lastReceived = Math.max(...received.map((e) => e.seq));
    assert.ok(
      activates.every((s) => s.seq > lastReceived),
      `stage ${stage}: ACTIVATEs after all 0x00`,
    );
    const activating = h.eventsOf("rollout.stage.activating")[stage]!;
    assert.ok(activating.seq > lastReceived && activating.seq < activates[0]!.seq);
  }
  assert.equal(h.eventsOf("rollout.stage.received").length, 2);
});

Deno.test("two-phase activation: received devices free their slot while they wait", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nconcurrency: 2\nactivation: stage",
    devices: 10,
    answer: HAPPY,
  });
  h.engine.start();
  h.clock.run({ until: 4_999 });
  assert.equal(h.engine.summary().counts.received, 8);
  assert.equal(h.engine.summary().inFlight, 2);
  h.clock.run({ until: 5_000 });
  const activates = h.sendsOf("activate");
  assert.equal(
    activates.length,
    2,
    "all ten received with two slots; the stage activates two at a time",
  );
  assert.equal(h.eventsOf("device.received").filter((e) => e.seq < activates[0]!.seq).length, 10);
  h.run();
  assert.equal(h.engine.state, "completed");
});

Deno.test("two-phase activation: a device that fails to download is not activated", () => {
  const h = harness({
    policy: `stages: [{percent: 100}]
activation: stage
success: { minPercent: 50 }
retry: { attempts: 1 }`,
    devices: 4,
    answer: (send) => send.index === 2 && send.kind === "initiate" ? { status: 0xfc } : HAPPY(send),
  }).run();
  assert.equal(h.engine.state, "completed");
  assert.deepEqual(h.sendsOf("activate").map((s) => s.index).sort(), [0, 1, 3]);
});
