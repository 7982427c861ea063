import assert from "node:assert/strict";
import { showRollout } from "../../cli/ctl_rollouts.ts";

function rollout(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    id: "01a23757-f7a8-7f97-a088-243fb10d8328",
    state: "running",
    stage: 0,
    stages: [{ percent: 100 }],
    devices: 1,
    artifact: { digest: "e".repeat(64) },
    policy: { name: "night", sha256: "1".repeat(64) },
    counts: { pending: 1 },
    startAt: "2027-01-01T00:00:00.000Z",
    ...fields,
  };
}

Deno.test("showRollout() says when a scheduled rollout starts, started, or never did", () => {
  assert.match(
    showRollout(rollout({ state: "scheduled", updatedAt: "2026-12-02T15:20:41.641Z" })),
    /^ {2}starts at 2027-01-01T00:00:00.000Z$/m,
  );
  assert.match(
    showRollout(rollout({ state: "running", updatedAt: "2027-01-01T00:05:00.000Z" })),
    /^ {2}started at 2027-01-01T00:00:00.000Z$/m,
  );
  const cancelled = showRollout(
    rollout({ state: "cancelled", updatedAt: "2026-12-02T15:20:50.397Z" }),
  );
  assert.match(
    cancelled,
    /^ {2}was scheduled for 2027-01-01T00:00:00.000Z: cancelled before it started$/m,
  );
  assert.doesNotMatch(cancelled, /started at/);
  assert.doesNotMatch(showRollout(rollout({ startAt: null })), /start/);
});
