import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createRollout,
  openDatabase,
  registerDevice,
  updateDevices,
  updateRollout,
  upsertRolloutDevices,
} from "../../db/mod.ts";
import { validatePolicy } from "../../policies/mod.ts";
import { api, startTestService } from "./_service.ts";

const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

Deno.test({
  name:
    "a service that stopped between a halt and its onAbort rollback creates the rollback at start",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const dataDir = join(root, "data");
    const a = "a".repeat(64);
    const b = "b".repeat(64);
    const ids = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    // As the halted process left it: two of three devices activated b over a, then a 0xFF.
    const database = await openDatabase({ dataDir });
    let halted: string;
    try {
      for (const id of ids) await registerDevice(database.db, { id, publicKey: KEY });
      await updateDevices(database.db, ids.map((id) => ({ id, digest: a })));
      const { policy } = validatePolicy({
        name: "undo",
        stages: [{ percent: 100 }],
        onAbort: "rollback",
      });
      const row = await createRollout(database.db, {
        artifactDigest: b,
        artifactUrl: "https://files.example/b.bin",
        policy: policy as unknown as Record<string, unknown>,
        policyName: "undo",
        policySha256: "c".repeat(64),
        targets: { ids },
        deviceIds: ids,
      });
      halted = row.id;
      await updateDevices(database.db, ids.slice(0, 2).map((id) => ({ id, digest: b })));
      await upsertRolloutDevices(
        database.db,
        ids.map((id, position) => ({
          rolloutId: row.id,
          deviceId: id,
          position,
          state: position < 2 ? "activated" : "failed",
          token: "00".repeat(16),
          attempt: 1,
          deadline: null,
          lastStatus: position < 2 ? 0x10 : 0xff,
        })),
      );
      await updateRollout(database.db, row.id, { state: "halted", haltReason: "Digest mismatch" });
    } finally {
      await database.close();
    }
    const service = await startTestService(dataDir);
    try {
      const original = await api(service, "GET", `/v1/rollouts/${halted}`);
      const owed = original.body.rolledBackBy as string[];
      assert.equal(owed.length, 1, JSON.stringify(original.body));
      const rollback = await api(service, "GET", `/v1/rollouts/${owed[0]}`);
      assert.equal(rollback.body.action, "rollback");
      assert.equal(rollback.body.rollbackOf, halted);
      assert.equal(rollback.body.devices, 2);
      const devices = await api(service, "GET", `/v1/rollouts/${owed[0]}/devices`);
      assert.deepEqual(
        (devices.body.items as { deviceId: string; digest: string }[]).map((d) => [
          d.deviceId,
          d.digest,
        ]),
        [[ids[0], a], [ids[1], a]],
      );
    } finally {
      await service.close();
    }
    // A second start owes nothing more.
    const again = await startTestService(dataDir);
    try {
      const original = await api(again, "GET", `/v1/rollouts/${halted}`);
      assert.equal((original.body.rolledBackBy as string[]).length, 1);
    } finally {
      await again.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
