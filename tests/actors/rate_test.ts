import assert from "node:assert/strict";
import { perMinute, RateLimiter } from "../../actors/mod.ts";
import { HAPPY, harness } from "./_harness.ts";

function firstAttemptTimes(h: ReturnType<typeof harness>): number[] {
  return h.sendsOf("initiate").filter((s) => s.attempt === 1).map((s) => s.at);
}

Deno.test("rate perMinute spaces new devices evenly", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nconcurrency: 100\nrate: { perMinute: 60 }",
    devices: 10,
    answer: HAPPY,
  }).run();
  assert.equal(h.engine.state, "completed");
  assert.deepEqual(firstAttemptTimes(h), [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]);
});

Deno.test("rate perMinute allows at most that many starts in any minute", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nconcurrency: 1000\nrate: { perMinute: 120 }",
    devices: 500,
    answer: HAPPY,
  }).run();
  const times = firstAttemptTimes(h);
  assert.equal(times.length, 500);
  for (let i = 120; i < times.length; i++) assert.ok(times[i]! - times[i - 120]! >= 60_000);
});

Deno.test("an exponential ramp multiplies the rate every N notified devices", () => {
  const h = harness({
    policy: `stages: [{percent: 100}]
concurrency: 100
rate: { exponential: { base: 6, factor: 2, every: 2, on: notified, max: 24 } }`,
    devices: 8,
    answer: HAPPY,
  }).run();
  const times = firstAttemptTimes(h);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  // 6/min (10 s apart) for the first two, then 12/min (5 s), then capped at 24/min (2.5 s).
  assert.deepEqual(gaps, [10_000, 5_000, 5_000, 2_500, 2_500, 2_500, 2_500]);
});

Deno.test("an exponential ramp on succeeded grows only as devices succeed", () => {
  assert.equal(
    perMinute({ exponential: { base: 50, factor: 2, every: 100, on: "succeeded" } }, {
      notified: 10_000,
      succeeded: 99,
    }),
    50,
  );
  assert.equal(
    perMinute({ exponential: { base: 50, factor: 2, every: 100, on: "succeeded" } }, {
      notified: 0,
      succeeded: 250,
    }),
    200,
  );
  const limiter = new RateLimiter({ perMinute: 600 });
  assert.ok(limiter.allows(0));
  limiter.take(0, { notified: 1, succeeded: 0 });
  assert.ok(!limiter.allows(99));
  assert.ok(limiter.allows(100));
  assert.equal(limiter.next, 100);
});
