import assert from "node:assert/strict";
import { LATENCY_BUCKETS_MS, LatencyHistogram } from "../../obs/mod.ts";

Deno.test("LatencyHistogram keeps cumulative bucket counts, sum and maximum", () => {
  const histogram = new LatencyHistogram();
  for (const ms of [0.2, 0.7, 3, 3, 20_000]) histogram.observe(ms);
  const snapshot = histogram.snapshot();
  assert.equal(snapshot.count, 5);
  assert.equal(snapshot.sumMs, 20_006.9);
  assert.equal(snapshot.maxMs, 20_000);
  assert.equal(snapshot.buckets.length, LATENCY_BUCKETS_MS.length);
  // <=0.5: 1, <=1: 2, <=2.5: 2, <=5: 4, ... <=10000: 4; the 20 s one is only in count (+Inf).
  assert.deepEqual(snapshot.buckets.slice(0, 4), [1, 2, 2, 4]);
  assert.equal(snapshot.buckets.at(-1), 4);
});
