/** Cluster on PostgreSQL: a node keeps its own lapsed lease through renewal, never by a claim. */
import assert from "node:assert/strict";
import {
  claimRollout,
  createRollout,
  getRollout,
  openDatabase,
  registerDevice,
  type Rollout,
  sequenceStore,
} from "../../db/mod.ts";
import { createSequenceAllocator } from "../../io/sequence.ts";
import { Cluster } from "../../orchestrator/cluster.ts";
import { createTestDatabase, TEST_DATABASE_URL } from "../db/_postgres.ts";

const DIGEST = "cd".repeat(32);

Deno.test({
  name: "Cluster.scan() leaves a lease this node holds to renewal, even once it lapsed",
  ignore: TEST_DATABASE_URL === undefined,
  async fn() {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    const database = await openDatabase({ url: target.url });
    const { db } = database;
    try {
      const device = crypto.randomUUID();
      await registerDevice(db, { id: device, publicKey: "key" });
      const rollout = await createRollout(db, {
        artifactDigest: DIGEST,
        artifactUrl: "http://127.0.0.1/fw.bin",
        policy: {},
        policyName: "p",
        policySha256: DIGEST,
        targets: { all: true },
        deviceIds: [device],
        lease: { node: "a", ttlMs: 60_000 },
      });
      const restored: Rollout[] = [];
      const lost: string[] = [];
      const driver = {
        restore: (row: Rollout) => Promise.resolve(void restored.push(row)),
        lost: (id: string) => void lost.push(id),
        command: () => Promise.resolve(false),
        forget: () => {},
      };
      const sequence = createSequenceAllocator({ ...sequenceStore(db), block: 10n });
      const a = new Cluster({ db, node: "a", ttlMs: 60_000, sequence, log: () => {} });
      // Held at epoch 2 with no time left, as after the database was away longer than the TTL.
      const lapsed = await claimRollout(db, rollout.id, { node: "a", ttlMs: 0, reclaimOwn: true });
      a.adopt(rollout.id, lapsed!.leaseEpoch, a.mark());
      await a.start(driver);
      assert.equal(await a.scan(), 0);
      assert.deepEqual(restored, []);
      await a.renew();
      assert.deepEqual(lost, []);
      const row = await getRollout(db, rollout.id);
      assert.equal(row?.owner, "a");
      assert.equal(row?.leaseEpoch, 2);
      assert.ok(row!.leaseExpiresAt!.getTime() > Date.now() + 30_000);
      await a.close(true);
      assert.equal((await getRollout(db, rollout.id))?.owner, null);
    } finally {
      await database.close();
      await target.drop();
    }
  },
});
