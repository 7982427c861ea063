/** Cluster leases on PostgreSQL: claim, renew, release, epoch fencing, atomic sequence blocks. */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  claimRollout,
  createRollout,
  endStuckSessions,
  type Fence,
  FencedWriteError,
  getRollout,
  GroupCommitWriter,
  heartbeat,
  listClaimable,
  listEvents,
  listNodes,
  listRolloutDevices,
  nodeApplicationName,
  openDatabase,
  registerDevice,
  releaseLeases,
  renewLeases,
  sequenceStore,
} from "../../db/mod.ts";
import { createSequenceAllocator } from "../../io/sequence.ts";
import { createTestDatabase, TEST_DATABASE_URL } from "./_postgres.ts";

if (TEST_DATABASE_URL === undefined) {
  console.log("lease tests skipped: FLOTILLA_TEST_DATABASE_URL is not set");
}

const DIGEST = "ab".repeat(32);
const HOUR = 3_600_000;

Deno.test({
  name: "leases: claims grow the epoch, and a write at a stale epoch updates no row and is counted",
  ignore: TEST_DATABASE_URL === undefined,
  async fn(t) {
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
        lease: { node: "a", ttlMs: HOUR },
      });
      const id = rollout.id;

      await t.step("the creating node owns it at epoch 1", () => {
        assert.equal(rollout.owner, "a");
        assert.equal(rollout.leaseEpoch, 1);
      });

      await t.step("another node cannot claim a live lease", async () => {
        assert.equal(await claimRollout(db, id, { node: "b", ttlMs: HOUR }), undefined);
        assert.deepEqual(await listClaimable(db, { node: "b", ttlMs: HOUR }), []);
      });

      await t.step("renewal holds only at the held epoch", async () => {
        assert.deepEqual(await renewLeases(db, "a", [{ id, epoch: 1 }], HOUR), new Set([id]));
        assert.deepEqual(await renewLeases(db, "a", [{ id, epoch: 7 }], HOUR), new Set());
        assert.deepEqual(await renewLeases(db, "b", [{ id, epoch: 1 }], HOUR), new Set());
      });

      await t.step("an expired lease is claimed by another node at the next epoch", async () => {
        // A restart of node a takes its own lease back, here with no time left on it.
        const own = await claimRollout(db, id, { node: "a", ttlMs: 0, reclaimOwn: true });
        assert.equal(own?.leaseEpoch, 2);
        assert.deepEqual(await listClaimable(db, { node: "b", ttlMs: HOUR }), [{ id, owner: "a" }]);
        const taken = await claimRollout(db, id, { node: "b", ttlMs: HOUR });
        assert.equal(taken?.owner, "b");
        assert.equal(taken?.leaseEpoch, 3);
        // Node a's renewal now finds nothing: it lost the lease.
        assert.deepEqual(await renewLeases(db, "a", [{ id, epoch: 2 }], HOUR), new Set());
      });

      await t.step("writes at a stale epoch are refused, counted and reported", async () => {
        const fenced: [string, Fence, number][] = [];
        const writer = new GroupCommitWriter(db, {
          onFenced: (rolloutId, fence, n) => fenced.push([rolloutId, fence, n]),
          onError: () => {},
        });
        const stale = { node: "a", epoch: 2 };
        const results = await Promise.allSettled([
          writer.enqueue({ kind: "rollout", id, patch: { stage: 5 } }, { fence: stale }),
          writer.enqueue({
            kind: "rollout_device",
            row: {
              rolloutId: id,
              deviceId: device,
              position: 0,
              state: "initiated",
              token: "00ff",
              attempt: 1,
              deadline: null,
              lastStatus: null,
            },
          }, { fence: stale }),
          writer.enqueue({
            kind: "event",
            event: { rolloutId: id, type: "rollout.stage", data: {} },
          }, { fence: stale }),
          // A write of no rollout in the same batch lands.
          writer.enqueue({ kind: "seen", deviceId: device, at: new Date() }),
        ]);
        await writer.close();
        assert.deepEqual(results.map((r) => r.status), [
          "rejected",
          "rejected",
          "rejected",
          "fulfilled",
        ]);
        for (const result of results.slice(0, 3)) {
          assert.ok((result as PromiseRejectedResult).reason instanceof FencedWriteError);
        }
        assert.equal(writer.fencedWrites, 3);
        assert.deepEqual(fenced, [[id, stale, 3]]);
        const row = await getRollout(db, id);
        assert.equal(row?.stage, 0);
        assert.equal(row?.leaseEpoch, 3);
        const devices = await listRolloutDevices(db, id);
        assert.equal(devices.items[0]?.state, "pending");
        assert.deepEqual(await listEvents(db, { rolloutId: id }), []);
      });

      await t.step(
        "in a batch of two rollouts, only the stale one's writes are refused",
        async () => {
          const other = crypto.randomUUID();
          await registerDevice(db, { id: other, publicKey: "key" });
          const second = await createRollout(db, {
            artifactDigest: DIGEST,
            artifactUrl: "http://127.0.0.1/fw.bin",
            policy: {},
            policyName: "p",
            policySha256: DIGEST,
            targets: { all: true },
            deviceIds: [other],
            lease: { node: "a", ttlMs: HOUR },
          });
          const writer = new GroupCommitWriter(db, { onError: () => {} });
          const results = await Promise.allSettled([
            writer.enqueue({ kind: "rollout", id, patch: { stage: 6 } }, {
              fence: { node: "a", epoch: 2 },
            }),
            writer.enqueue({ kind: "rollout", id: second.id, patch: { stage: 2 } }, {
              fence: { node: "a", epoch: 1 },
            }),
          ]);
          await writer.close();
          assert.deepEqual(results.map((r) => r.status), ["rejected", "fulfilled"]);
          assert.equal(writer.fencedWrites, 1);
          assert.equal((await getRollout(db, id))?.stage, 0);
          assert.equal((await getRollout(db, second.id))?.stage, 2);
          await releaseLeases(db, "a");
        },
      );

      await t.step("writes at the current epoch land", async () => {
        const writer = new GroupCommitWriter(db);
        await writer.enqueue({ kind: "rollout", id, patch: { stage: 1 } }, {
          fence: { node: "b", epoch: 3 },
        });
        await writer.close();
        assert.equal(writer.fencedWrites, 0);
        assert.equal((await getRollout(db, id))?.stage, 1);
      });

      await t.step("a released lease is claimable at once", async () => {
        assert.equal(await releaseLeases(db, "b"), 1);
        assert.equal((await getRollout(db, id))?.owner, null);
        assert.equal((await claimRollout(db, id, { node: "c", ttlMs: HOUR }))?.leaseEpoch, 4);
      });

      await t.step("nodes heartbeat and list the rollouts they own", async () => {
        await heartbeat(db, "c", true);
        await heartbeat(db, "d", true);
        const nodes = await listNodes(db, 60_000);
        // c holds the first rollout; the second, released by a, is held by none.
        assert.deepEqual(nodes.map((n) => [n.id, n.rollouts]), [["c", 1], ["d", 0]]);
      });
    } finally {
      await database.close();
      await target.drop();
    }
  },
});

Deno.test({
  name: "endStuckSessions() ends a node's session that sits inside a transaction, and no other",
  ignore: TEST_DATABASE_URL === undefined,
  // The ended session's client is not ended again: postgres.js would write to its closed socket.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    const database = await openDatabase({ url: target.url });
    const frozen = postgres(target.url, {
      max: 1,
      onnotice: () => {},
      connection: { application_name: nodeApplicationName("x") },
    });
    const bystander = postgres(target.url, {
      max: 1,
      onnotice: () => {},
      connection: { application_name: nodeApplicationName("y") },
    });
    try {
      // A transaction left open, as by a node stopped between two statements of a commit.
      const session = await frozen.reserve();
      await session`begin`;
      await session`select 1`;
      const other = await bystander.reserve();
      await other`begin`;
      await other`select 1`;
      assert.equal(await endStuckSessions(database.db, "x", 0), 1);
      await assert.rejects(session`select 1`);
      assert.deepEqual([...await other`select 1 as one`], [{ one: 1 }]);
      await other`rollback`;
      other.release();
    } finally {
      await bystander.end({ timeout: 1 });
      await database.close();
      await target.drop();
    }
  },
});

Deno.test({
  name: "sequence blocks: nodes sharing one mark never overlap, and fresh() jumps above all",
  ignore: TEST_DATABASE_URL === undefined,
  async fn() {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    const database = await openDatabase({ url: target.url });
    try {
      const store = sequenceStore(database.db);
      const a = createSequenceAllocator({ ...store, block: 10n });
      const b = createSequenceAllocator({ ...store, block: 10n });
      assert.equal(await a.next(), 1n);
      assert.equal(await b.next(), 11n);
      for (let i = 0; i < 4; i++) await b.next();
      // Node a takes over a device b sent id 15 to: its next id comes from a block above it.
      await a.fresh!();
      assert.equal(await a.next(), 21n);
      // Concurrent reservations still never overlap.
      const ids = await Promise.all(
        Array.from({ length: 8 }, () => createSequenceAllocator({ ...store, block: 10n }).next()),
      );
      assert.equal(new Set(ids).size, 8);
      assert.ok(ids.every((id) => id > 30n));
      assert.equal(await store.load(), 110n);
    } finally {
      await database.close();
      await target.drop();
    }
  },
});
