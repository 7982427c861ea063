import assert from "node:assert/strict";
import { parsePolicy } from "../../policies/mod.ts";
import { formatSummary, parseFaults, runVirtual } from "../../sim/mod.ts";

const CANARY = parsePolicy(
  await Deno.readTextFile(new URL("../../policies/canary.yaml", import.meta.url)),
).policy;

function withoutWall<T extends { wallSeconds: number }>(summary: T): Omit<T, "wallSeconds"> {
  const { wallSeconds: _, ...rest } = summary;
  return rest;
}

Deno.test("runVirtual() is deterministic for a seed and differs across seeds", () => {
  const options = { policy: CANARY, devices: 600, faults: parseFaults("fd=0.05,timeout=0.02") };
  const a = runVirtual({ ...options, seed: 42 });
  const b = runVirtual({ ...options, seed: 42 });
  const c = runVirtual({ ...options, seed: 43 });
  assert.deepEqual(withoutWall(a), withoutWall(b));
  assert.notDeepEqual(withoutWall(a), withoutWall(c));
  assert.equal(a.state, "completed");
  assert.ok(a.attempts["2"]! > 0, "faults caused retries");
});

Deno.test("runVirtual() summary has the documented fields", () => {
  const summary = runVirtual({ policy: CANARY, devices: 300, seed: 1 });
  assert.equal(summary.state, "completed");
  assert.equal(summary.devices, 300);
  assert.equal(summary.activated, 300);
  assert.equal(summary.failed, 0);
  assert.equal(summary.haltReason, null);
  assert.deepEqual(summary.stages.map((s) => [s.percent, s.devices, s.activated, s.failed]), [
    [1, 3, 3, 0],
    [10, 27, 27, 0],
    [50, 120, 120, 0],
    [100, 150, 150, 0],
  ]);
  assert.deepEqual(summary.attempts, { "1": 300 });
  assert.ok(summary.simulatedSeconds > 600, "the 10m bake is simulated time");
  assert.equal(typeof summary.wallSeconds, "number");
  assert.match(formatSummary(summary), /state completed: 300 activated/);
});

Deno.test("runVirtual() halts on 0xFF and reports the device", () => {
  const summary = runVirtual({
    policy: CANARY,
    devices: 1_000,
    seed: 3,
    faults: parseFaults("ff=0.01"),
  });
  assert.equal(summary.state, "halted");
  assert.equal(summary.haltReason?.kind, "digest_mismatch");
  assert.equal(
    summary.stages[3]!.pending,
    summary.stages[3]!.devices,
    "the last stage never started",
  );
  assert.match(formatSummary(summary), /halted: digest mismatch \(0xFF\) from device /);
});

Deno.test("runVirtual() waits for approval without auto-promote, and cancels on request", () => {
  const waiting = runVirtual({ policy: CANARY, devices: 200, seed: 1, autoPromote: false });
  assert.equal(waiting.state, "waiting_approval");
  assert.equal(waiting.activated, 100, "stages 1% and 10%, then 50% up to the approval");
  const cancelled = runVirtual({ policy: CANARY, devices: 2_000, seed: 1, cancelAfter: 30_000 });
  assert.equal(cancelled.state, "cancelled");
  assert.ok(cancelled.pending > 0);
});
