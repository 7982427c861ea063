import assert from "node:assert/strict";
import { SimClock } from "../../sim/mod.ts";
import { seededRandom } from "../_helpers.ts";

Deno.test("SimClock fires timers in time order, ties in the order they were set", () => {
  const clock = new SimClock();
  const fired: string[] = [];
  clock.setTimeout(() => fired.push("b@20"), 20);
  clock.setTimeout(() => fired.push("a@10"), 10);
  clock.setTimeout(() => fired.push("c@20"), 20);
  clock.setTimeout(() => fired.push("z@0"), 0);
  assert.equal(clock.pending, 4);
  assert.equal(clock.run(), 4);
  assert.deepEqual(fired, ["z@0", "a@10", "b@20", "c@20"]);
  assert.equal(clock.now(), 20);
});

Deno.test("SimClock clearTimeout() removes a timer; clearing twice or after firing is harmless", () => {
  const clock = new SimClock(1_000);
  const fired: number[] = [];
  const a = clock.setTimeout(() => fired.push(1), 5);
  const b = clock.setTimeout(() => fired.push(2), 6);
  clock.clearTimeout(a);
  clock.clearTimeout(a);
  assert.equal(clock.pending, 1);
  clock.run();
  clock.clearTimeout(b);
  clock.clearTimeout(undefined);
  assert.deepEqual(fired, [2]);
  assert.equal(clock.now(), 1_006);
});

Deno.test("SimClock timers set by timers run at their own time; advance() moves time", () => {
  const clock = new SimClock();
  const at: number[] = [];
  clock.setTimeout(() => {
    at.push(clock.now());
    clock.setTimeout(() => at.push(clock.now()), 50);
  }, 100);
  clock.advance(120);
  assert.deepEqual(at, [100]);
  assert.equal(clock.now(), 120);
  clock.advance(30);
  assert.deepEqual(at, [100, 150]);
  assert.equal(clock.run({ limit: 5 }), 0);
});

Deno.test("SimClock stays ordered under many random sets and clears", () => {
  const clock = new SimClock();
  const random = seededRandom(7);
  const ids: unknown[] = [];
  const fired: number[] = [];
  let cleared = 0;
  for (let i = 0; i < 5_000; i++) {
    const delay = Math.floor(random() * 1_000);
    ids.push(clock.setTimeout(() => fired.push(delay), delay));
    if (random() < 0.3) {
      clock.clearTimeout(ids[Math.floor(random() * ids.length)]);
    }
  }
  cleared = 5_000 - clock.pending;
  assert.equal(clock.run(), 5_000 - cleared);
  for (let i = 1; i < fired.length; i++) assert.ok(fired[i - 1]! <= fired[i]!);
});
