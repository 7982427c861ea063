import assert from "node:assert/strict";
import {
  createRollout,
  getRollout,
  openDatabase,
  registerDevice,
  upsertRolloutDevices,
} from "../../db/mod.ts";
import type { Orchestrator } from "../../orchestrator/orchestrator.ts";
import { rolloutView } from "../../orchestrator/rollout_view.ts";

const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

Deno.test("rolloutView() of a rollout this process does not run has its stage figures from storage", async () => {
  const database = await openDatabase({ memory: true });
  try {
    const { db } = database;
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push((await registerDevice(db, { id: crypto.randomUUID(), publicKey: KEY })).id);
    }
    const created = await createRollout(db, {
      artifactDigest: "ab".repeat(32),
      artifactUrl: "https://artifacts.example/ab",
      policy: { name: "canary", stages: [{ percent: 20 }, { percent: 100 }] },
      policyName: "canary",
      policySha256: "cd".repeat(32),
      policyCommit: null,
      targets: { ids },
      deviceIds: ids,
    });
    const row = (state: string, position: number) => ({
      rolloutId: created.id,
      deviceId: ids[position]!,
      position,
      state,
      token: null,
      attempt: 1,
      deadline: null,
      lastStatus: null,
    });
    await upsertRolloutDevices(db, [
      row("activated", 0),
      row("failed", 1),
      row("activated", 2),
      row("retrying", 3),
      row("received", 4),
      row("skipped", 9),
    ]);
    // As after a restart: no runner drives this rollout.
    const idle = { runner: () => undefined } as unknown as Orchestrator;
    const view = await rolloutView(db, idle, (await getRollout(db, created.id))!);
    const zero = { inFlight: 0, received: 0, activated: 0, failed: 0, cancelled: 0, skipped: 0 };
    assert.deepEqual(view.stages, [
      { ...zero, percent: 20, devices: 2, pending: 0, activated: 1, failed: 1 },
      {
        ...zero,
        percent: 100,
        devices: 8,
        pending: 4,
        activated: 1,
        inFlight: 1,
        received: 1,
        skipped: 1,
      },
    ]);
  } finally {
    await database.close();
  }
});
