import assert from "node:assert/strict";
import { initialHead, snapshotFromRows, type StartedRow } from "../../actors/mod.ts";
import { deviceId, policyOf } from "./_harness.ts";

const POLICY = policyOf("stages: [{percent: 100}]");
const IDS = Array.from({ length: 6 }, (_, i) => deviceId(i));
const TOKEN = "ab".repeat(16);

function row(position: number, state: string, token: string | null = TOKEN): StartedRow {
  return {
    deviceId: IDS[position]!,
    position,
    state,
    token,
    attempt: 1,
    deadline: 5,
    lastStatus: null,
  };
}

Deno.test("snapshotFromRows() retries a device whose row is missing, with a token of the injected source", () => {
  const snapshot = snapshotFromRows("r1", null, {
    policy: POLICY,
    deviceIds: IDS,
    started: [row(0, "activated"), row(2, "initiated")],
    now: 1_000,
    token: () => new Uint8Array(16).fill(7),
  })!;
  assert.deepEqual(snapshot.devices.map((d) => [d.id, d.state, d.token]), [
    [IDS[0], "activated", TOKEN],
    [IDS[1], "retrying", "07".repeat(16)],
    [IDS[2], "initiated", TOKEN],
  ]);
  assert.equal(snapshot.cursor, 3);
  assert.throws(
    () =>
      snapshotFromRows("r1", null, {
        policy: POLICY,
        deviceIds: IDS,
        started: [row(1, "initiated")],
        now: 0,
        token: () => new Uint8Array(8),
      }),
    /token/,
  );
});

Deno.test("snapshotFromRows() neither retries nor counts skipped rows as dispatched", () => {
  const snapshot = snapshotFromRows("r1", null, {
    policy: POLICY,
    deviceIds: IDS,
    started: [row(0, "skipped", null), row(1, "initiated"), row(5, "skipped", null)],
    now: 1_000,
    token: () => new Uint8Array(16),
  })!;
  assert.deepEqual(snapshot.devices.map((d) => d.id), [IDS[1]]);
  assert.equal(snapshot.cursor, 2, "devices 2 to 4 were never started");
});

Deno.test("initialHead() is a just-started rollout, built without an engine", () => {
  const head = initialHead("r1", POLICY, { at: 42 });
  assert.deepEqual([head.at, head.cursor, head.activationCursor, head.devices], [42, 0, 0, []]);
  assert.equal((head.machine as { value: unknown }).value !== "idle", true);
});
