/** The storage test suite, run against every driver by the *_test.ts files beside it. */
import assert from "node:assert/strict";
import { sql } from "drizzle-orm";
import {
  apiTokens,
  appendEvents,
  type CommitInfo,
  ConflictError,
  countRolloutDevices,
  countRolloutDevicesByStage,
  createApiToken,
  createRollout,
  type Database,
  type Db,
  deleteDevice,
  deviceRolloutHistory,
  findApiToken,
  findRolloutDeviceByToken,
  getArtifact,
  getDevice,
  getRollout,
  getServerState,
  GroupCommitWriter,
  hashToken,
  InvalidDataError,
  joinRollout,
  leaveRollout,
  listActiveRollouts,
  listApiTokens,
  listArtifacts,
  listDevices,
  listEvents,
  listRolloutDeviceIds,
  listRolloutDevices,
  listRollouts,
  loadPublicKeys,
  loadSequences,
  loadStartedRolloutDevices,
  MAX_U64,
  moveRollout,
  type NewRollout,
  putArtifact,
  registerDevice,
  registerDevices,
  replaceApiToken,
  revokeApiToken,
  type RolloutDeviceRow,
  selectDeviceIds,
  sequenceStore,
  setServerState,
  touchApiToken,
  updateDevices,
  updateRollout,
  upsertRolloutDevices,
} from "../../db/mod.ts";

const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/** A lowercase hex SHA-256 made from `seed`. */
export function digestOf(seed: string): string {
  return seed.padEnd(64, "0").replace(/[^0-9a-f]/g, "a").slice(0, 64);
}

/** Registers `count` devices with `tags`; their ids in id order. */
export async function registerMany(
  db: Db,
  count: number,
  tags: Record<string, string> = {},
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const device = await registerDevice(db, { id: crypto.randomUUID(), publicKey: KEY, tags });
    ids.push(device.id);
  }
  return ids.sort();
}

/** A rollout request for `deviceIds` with placeholder policy fields. */
export function newRollout(deviceIds: readonly string[], extra: Partial<NewRollout> = {}) {
  return {
    artifactDigest: digestOf("ab"),
    artifactUrl: "https://artifacts.example/ab",
    policy: { name: "canary", stages: [{ percent: 10 }, { percent: 100 }] },
    policyName: "canary",
    policySha256: digestOf("cd"),
    policyCommit: "0123abc",
    targets: { ids: [...deviceIds] },
    deviceIds,
    ...extra,
  } satisfies NewRollout;
}

function row(rolloutId: string, deviceId: string, position: number, state: string) {
  return {
    rolloutId,
    deviceId,
    position,
    state,
    token: null,
    attempt: 0,
    deadline: null,
    lastStatus: null,
  } satisfies RolloutDeviceRow;
}

/** Runs every storage check against `database` as steps of `t`. */
export async function storageSuite(t: Deno.TestContext, database: Database): Promise<void> {
  const { db } = database;

  await t.step("registerDevice() stores a device and getDevice() reads it back", async () => {
    const id = crypto.randomUUID();
    const created = await registerDevice(db, { id, publicKey: KEY, tags: { site: "lab" } });
    assert.equal(created.id, id);
    const device = await getDevice(db, id);
    assert.ok(device);
    assert.equal(device.publicKey, KEY);
    assert.deepEqual(device.tags, { site: "lab" });
    assert.equal(device.currentDigest, null);
    assert.equal(device.lastSequence, null);
    assert.ok(device.createdAt instanceof Date);
    assert.equal(await getDevice(db, crypto.randomUUID()), undefined);
  });

  await t.step(
    "registerDevices() registers a batch all or nothing, or skips existing ids",
    async () => {
      const fresh = Array.from({ length: 3 }, () => ({ id: crypto.randomUUID(), publicKey: KEY }));
      assert.deepEqual(await registerDevices(db, fresh), { created: 3, skipped: 0 });
      const next = { id: crypto.randomUUID(), publicKey: KEY, tags: { site: "b" } };
      await assert.rejects(registerDevices(db, [next, fresh[0]!]), ConflictError);
      assert.equal(await getDevice(db, next.id), undefined, "a refused batch writes nothing");
      assert.deepEqual(
        await registerDevices(db, [next, fresh[0]!], { skipExisting: true }),
        { created: 1, skipped: 1 },
      );
      assert.deepEqual((await getDevice(db, next.id))?.tags, { site: "b" });
    },
  );

  await t.step("registerDevice() rejects a duplicate id with a ConflictError", async () => {
    const id = crypto.randomUUID();
    await registerDevice(db, { id, publicKey: KEY });
    await assert.rejects(
      registerDevice(db, { id, publicKey: KEY }),
      (error) =>
        error instanceof ConflictError &&
        error.message === `Cannot register device: device "${id}" already exists`,
    );
  });

  await t.step("a malformed id is an InvalidDataError, not an infrastructure error", async () => {
    await assert.rejects(
      registerDevice(db, { id: "not-a-uuid", publicKey: KEY }),
      (error) =>
        error instanceof InvalidDataError && /^Cannot register device: /.test(error.message),
    );
    await assert.rejects(getDevice(db, "not-a-uuid"), InvalidDataError);
  });

  await t.step("listDevices() pages through devices in id order", async () => {
    const tag = { page: crypto.randomUUID() };
    const ids = await registerMany(db, 25, tag);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await listDevices(db, { tags: tag, limit: 10, cursor });
      seen.push(...page.items.map((d) => d.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor !== undefined);
    assert.equal(pages, 3);
    assert.deepEqual(seen, ids);
    const exact = await listDevices(db, { tags: tag, limit: 25 });
    assert.equal(exact.items.length, 25);
    assert.equal(exact.nextCursor, null);
    await assert.rejects(listDevices(db, { limit: 0 }), RangeError);
    await assert.rejects(listDevices(db, { limit: 1001 }), RangeError);
  });

  await t.step("listDevices() filters by every given tag", async () => {
    const group = crypto.randomUUID();
    const north = await registerMany(db, 3, { group, site: "north", ring: "canary" });
    const south = await registerMany(db, 2, { group, site: "south", ring: "canary" });
    await registerMany(db, 2, { group, site: "north", ring: "main" });
    const all = await listDevices(db, { tags: { group } });
    assert.equal(all.items.length, 7);
    const canary = await listDevices(db, { tags: { group, ring: "canary" } });
    assert.deepEqual(canary.items.map((d) => d.id), [...north, ...south].sort());
    const northCanary = await listDevices(db, { tags: { group, site: "north", ring: "canary" } });
    assert.deepEqual(northCanary.items.map((d) => d.id), north);
    const none = await listDevices(db, { tags: { group, site: "west" } });
    assert.deepEqual(none.items, []);
  });

  await t.step("listDevices() filters by the state in the device's latest rollout", async () => {
    const tag = { state: crypto.randomUUID() };
    const [a, b, c] = await registerMany(db, 3, tag) as [string, string, string];
    const first = await createRollout(db, newRollout([a, b]));
    await upsertRolloutDevices(db, [row(first.id, a, 0, "failed"), row(first.id, b, 1, "failed")]);
    await updateRollout(db, first.id, { state: "completed" });
    const second = await createRollout(db, newRollout([a]));
    await upsertRolloutDevices(db, [row(second.id, a, 0, "activated")]);
    await updateRollout(db, second.id, { state: "completed" });
    const listed = await listDevices(db, { tags: tag });
    assert.deepEqual(
      listed.items.map((d) => [d.id, d.rollout]),
      [
        [a, { id: second.id, state: "activated" }],
        [b, { id: first.id, state: "failed" }],
        [c, null],
      ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
    const failed = await listDevices(db, { tags: tag, state: "failed" });
    assert.deepEqual(failed.items.map((d) => d.id), [b]);
    const activated = await listDevices(db, { tags: tag, state: "activated" });
    assert.deepEqual(activated.items.map((d) => d.id), [a]);
  });

  await t.step("deleteDevice() removes a device but keeps its rollout history", async () => {
    const [id] = await registerMany(db, 1) as [string];
    const rollout = await createRollout(db, newRollout([id]));
    await assert.rejects(
      deleteDevice(db, id),
      (error) =>
        error instanceof ConflictError &&
        error.message === `Cannot delete device "${id}": it is in active rollout "${rollout.id}"`,
    );
    assert.ok(await getDevice(db, id));
    await updateRollout(db, rollout.id, { state: "halted" });
    assert.equal(await deleteDevice(db, id), true);
    assert.equal(await getDevice(db, id), undefined);
    assert.equal(await deleteDevice(db, id), false);
    const history = await deviceRolloutHistory(db, id);
    assert.deepEqual(history.map((h) => h.rolloutId), [rollout.id]);
  });

  await t.step("updateDevices() stores only increasing sequence ids", async () => {
    const [id] = await registerMany(db, 1) as [string];
    const stored = async () => (await getDevice(db, id))?.lastSequence;
    await updateDevices(db, [{ id, sequence: 5n }]);
    assert.equal(await stored(), 5n);
    await updateDevices(db, [{ id, sequence: 5n }]);
    assert.equal(await stored(), 5n, "a replay changes nothing");
    await updateDevices(db, [{ id, sequence: 4n }]);
    assert.equal(await stored(), 5n, "an older id is not stored");
    await updateDevices(db, [{ id, sequence: 6n }]);
    assert.equal(await stored(), 6n);
    await updateDevices(db, [{ id: crypto.randomUUID(), sequence: 1n }]);
    assert.equal(await stored(), 6n, "an unknown device changes nothing");
    await assert.rejects(updateDevices(db, [{ id, sequence: -1n }]), RangeError);
    await assert.rejects(updateDevices(db, [{ id, sequence: MAX_U64 + 1n }]), RangeError);
    assert.equal(await stored(), 6n);
  });

  await t.step(
    "updateDevices() applies a floor reset in order: after earlier ids, under later ones",
    async () => {
      const [id] = await registerMany(db, 1) as [string];
      const stored = async () => (await getDevice(db, id))?.lastSequence;
      await updateDevices(db, [{ id, sequence: MAX_U64 }]);
      await updateDevices(db, [{ id, sequence: 2000n }, { id, resetSequence: null }]);
      assert.equal(await stored(), null);
      await updateDevices(db, [{ id, resetSequence: 10n }, { id, sequence: 5n }]);
      assert.equal(await stored(), 10n, "a lower id after the reset does not move it");
      await updateDevices(db, [{ id, resetSequence: null }, { id, sequence: 7n }]);
      assert.equal(await stored(), 7n);
      await updateDevices(db, [{ id, sequence: 3n }]);
      assert.equal(await stored(), 7n, "without a reset the stored id never moves back");
      await assert.rejects(updateDevices(db, [{ id, resetSequence: MAX_U64 + 1n }]), RangeError);
      assert.equal(await stored(), 7n);
    },
  );

  await t.step("updateDevices() keeps the highest of concurrent sequence ids", async () => {
    const [id] = await registerMany(db, 1) as [string];
    const values = Array.from({ length: 20 }, (_, i) => BigInt(100 + ((i * 7) % 20)));
    await Promise.all(values.map((sequence) => updateDevices(db, [{ id, sequence }])));
    assert.equal((await getDevice(db, id))?.lastSequence, 119n);
  });

  await t.step("u64 sequence ids above 2^63 round-trip exactly", async () => {
    const [id] = await registerMany(db, 1) as [string];
    const above = (1n << 63n) + 1n;
    await updateDevices(db, [{ id, sequence: above }]);
    assert.equal((await getDevice(db, id))?.lastSequence, above);
    await updateDevices(db, [{ id, sequence: (1n << 63n) - 1n }]);
    assert.equal((await getDevice(db, id))?.lastSequence, above);
    await updateDevices(db, [{ id, sequence: MAX_U64 }]);
    assert.equal((await getDevice(db, id))?.lastSequence, MAX_U64);
  });

  await t.step("updateDevices() shifts current digest to previous, idempotently", async () => {
    const [id] = await registerMany(db, 1) as [string];
    await updateDevices(db, [{ id, digest: digestOf("01") }]);
    let device = await getDevice(db, id);
    assert.equal(device?.currentDigest, digestOf("01"));
    assert.equal(device?.previousDigest, null);
    await updateDevices(db, [{ id, digest: digestOf("02") }]);
    await updateDevices(db, [{ id, digest: digestOf("02") }]);
    device = await getDevice(db, id);
    assert.equal(device?.currentDigest, digestOf("02"));
    assert.equal(device?.previousDigest, digestOf("01"), "a repeat keeps the previous digest");
    await assert.rejects(updateDevices(db, [{ id, digest: "NOT-HEX" }]), InvalidDataError);
  });

  await t.step("updateDevices() stores the latest seen time and never moves it back", async () => {
    const [a, b] = await registerMany(db, 2) as [string, string];
    const later = new Date("2030-01-02T03:04:05.678Z");
    const earlier = new Date("2030-01-01T00:00:00.000Z");
    await updateDevices(db, [{ id: a, seenAt: later }, { id: b, seenAt: earlier }]);
    await updateDevices(db, [{ id: a, seenAt: earlier }]);
    assert.equal((await getDevice(db, a))?.lastSeenAt?.toISOString(), later.toISOString());
    assert.equal((await getDevice(db, b))?.lastSeenAt?.toISOString(), earlier.toISOString());
  });

  await t.step(
    "updateDevices() merges a batch per device and leaves other fields alone",
    async () => {
      const [a, b] = await registerMany(db, 2) as [string, string];
      await updateDevices(db, [{ id: a, digest: digestOf("01") }]);
      const later = new Date("2031-01-02T03:04:05.678Z");
      const earlier = new Date("2031-01-01T00:00:00.000Z");
      await updateDevices(db, [
        { id: a, seenAt: later },
        { id: a, sequence: 7n },
        { id: a, seenAt: earlier },
        { id: b, digest: digestOf("02") },
        { id: a, sequence: 5n },
      ]);
      const deviceA = await getDevice(db, a);
      assert.equal(deviceA?.lastSeenAt?.toISOString(), later.toISOString());
      assert.equal(deviceA?.lastSequence, 7n);
      assert.equal(deviceA?.currentDigest, digestOf("01"), "no digest in the batch: unchanged");
      const deviceB = await getDevice(db, b);
      assert.equal(deviceB?.currentDigest, digestOf("02"));
      assert.equal(deviceB?.lastSeenAt, null);
      assert.equal(deviceB?.lastSequence, null);
      // A stored sequence id never moves back, whatever the batch says.
      await updateDevices(db, [{ id: a, sequence: 6n }]);
      assert.equal((await getDevice(db, a))?.lastSequence, 7n);
      await assert.rejects(
        updateDevices(db, [{ id: b, sequence: 9n }, { id: "b,}", sequence: 1n }]),
        (error) => error instanceof InvalidDataError && /"b,}" is not a UUID/.test(error.message),
      );
      assert.equal((await getDevice(db, b))?.lastSequence, null, "nothing written");
    },
  );

  await t.step("putArtifact() stores an artifact once per digest", async () => {
    const digest = digestOf(crypto.randomUUID().replaceAll("-", ""));
    const stored = await putArtifact(db, { digest, size: 1234, path: `artifacts/${digest}` });
    assert.equal(stored.size, 1234);
    assert.equal(stored.contentType, "application/octet-stream");
    const again = await putArtifact(db, { digest, url: "https://elsewhere.example/x" });
    assert.deepEqual(again, stored, "the first record of a digest wins");
    assert.deepEqual(await getArtifact(db, digest), stored);
    const external = digestOf(crypto.randomUUID().replaceAll("-", ""));
    const registered = await putArtifact(db, { digest: external, url: "https://cdn.example/f" });
    assert.equal(registered.size, null);
    assert.equal(registered.path, null);
    assert.equal(await getArtifact(db, digestOf("f")), undefined);
  });

  await t.step("putArtifact() refuses a bad digest and a record without url or path", async () => {
    await assert.rejects(
      putArtifact(db, { digest: "ABC", url: "https://cdn.example/f" }),
      (error) => error instanceof InvalidDataError && error.constraint === "artifacts_digest_hex",
    );
    await assert.rejects(
      putArtifact(db, { digest: digestOf("77") }),
      (error) => error instanceof InvalidDataError && error.constraint === "artifacts_url_or_path",
    );
    await assert.rejects(
      putArtifact(db, { digest: digestOf("78"), url: "https://a.example/", path: "a" }),
      InvalidDataError,
    );
    await assert.rejects(
      putArtifact(db, { digest: digestOf("79"), path: "a", blob: crypto.randomUUID() }),
      (error) => error instanceof InvalidDataError && error.constraint === "artifacts_url_or_path",
    );
  });

  await t.step("listArtifacts() pages in digest order", async () => {
    const all: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listArtifacts(db, { limit: 2, cursor });
      assert.ok(page.items.length <= 2);
      all.push(...page.items.map((a) => a.digest));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    assert.ok(all.length >= 2);
    assert.deepEqual(all, [...all].sort());
    assert.equal(new Set(all).size, all.length);
  });

  await t.step("createRollout() writes the rollout and its devices in order", async () => {
    const ids = await registerMany(db, 30);
    const order = [...ids].reverse();
    const rollout = await createRollout(db, newRollout(order));
    assert.equal(rollout.state, "running");
    assert.equal(rollout.stage, 0);
    assert.equal(rollout.deviceCount, 30);
    assert.equal(rollout.haltReason, null);
    assert.deepEqual(rollout.policy, newRollout([]).policy);
    assert.deepEqual(await getRollout(db, rollout.id), rollout);
    assert.deepEqual(await countRolloutDevices(db, rollout.id), { pending: 30 });
    const listed: string[] = [];
    let cursor: number | undefined;
    do {
      const page = await listRolloutDevices(db, rollout.id, { limit: 7, cursor });
      listed.push(...page.items.map((d) => d.deviceId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    assert.deepEqual(listed, order);
    assert.deepEqual(await loadStartedRolloutDevices(db, rollout.id), []);
  });

  await t.step("countRolloutDevicesByStage() counts each stage's devices by state", async () => {
    const ids = await registerMany(db, 10);
    const rollout = await createRollout(db, newRollout(ids));
    await upsertRolloutDevices(db, [
      row(rollout.id, ids[0]!, 0, "activated"),
      row(rollout.id, ids[1]!, 1, "failed"),
      row(rollout.id, ids[4]!, 4, "activated"),
      row(rollout.id, ids[9]!, 9, "cancelled"),
    ]);
    // Stages end at positions 2, 5 and 10: 0-1, 2-4 and 5-9.
    assert.deepEqual(await countRolloutDevicesByStage(db, rollout.id, [2, 5, 10]), [
      { activated: 1, failed: 1 },
      { pending: 2, activated: 1 },
      { pending: 4, cancelled: 1 },
    ]);
    assert.deepEqual(await countRolloutDevicesByStage(db, crypto.randomUUID(), [2, 5]), [{}, {}]);
  });

  await t.step("createRollout() writes nothing when a device is unknown", async () => {
    const ids = await registerMany(db, 3);
    const stranger = crypto.randomUUID();
    const id = crypto.randomUUID();
    await assert.rejects(
      createRollout(db, newRollout([...ids, stranger], { id })),
      (error) =>
        error instanceof InvalidDataError &&
        error.message === `Cannot create rollout: unknown device "${stranger}"`,
    );
    assert.equal(await getRollout(db, id), undefined);
    assert.deepEqual(await countRolloutDevices(db, id), {});
  });

  await t.step("createRollout() refuses a device listed twice and a taken id", async () => {
    const [a, b] = await registerMany(db, 2) as [string, string];
    await assert.rejects(
      createRollout(db, newRollout([a, b, a])),
      (error) =>
        error instanceof InvalidDataError &&
        error.message === `Cannot create rollout: device "${a}" is listed twice`,
    );
    const rollout = await createRollout(db, newRollout([a]));
    await assert.rejects(createRollout(db, newRollout([b], { id: rollout.id })), ConflictError);
    assert.deepEqual(await countRolloutDevices(db, rollout.id), { pending: 1 });
    await assert.rejects(
      createRollout(db, newRollout([a], { policySha256: "nope" })),
      InvalidDataError,
    );
  });

  await t.step("createRollout() refuses a device an active rollout drives", async () => {
    const [a, b] = await registerMany(db, 2) as [string, string];
    const first = await createRollout(db, newRollout([a]));
    await assert.rejects(
      createRollout(db, newRollout([b, a])),
      (error) =>
        error instanceof ConflictError &&
        error.message === `Cannot create rollout: device "${a}" is in active rollout "${first.id}"`,
    );
    assert.equal((await listRolloutDevices(db, first.id)).items.length, 1);
    await updateRollout(db, first.id, { state: "completed" });
    const second = await createRollout(db, newRollout([b, a]));
    assert.deepEqual(await listRolloutDeviceIds(db, second.id), [b, a]);
  });

  await t.step("createRollout() handles 5,000 targets in one call", async () => {
    const ids = await db.execute(sql`
      insert into devices (id, public_key)
      select gen_random_uuid(), ${KEY} from generate_series(1, 5000)
      returning id`);
    const deviceIds = (Array.isArray(ids) ? ids : (ids as { rows: unknown[] }).rows)
      .map((r) => (r as { id: string }).id);
    assert.equal(deviceIds.length, 5000);
    const rollout = await createRollout(db, newRollout(deviceIds));
    assert.deepEqual(await countRolloutDevices(db, rollout.id), { pending: 5000 });
    const last = await listRolloutDevices(db, rollout.id, { cursor: 4997 });
    assert.deepEqual(last.items.map((d) => d.deviceId), deviceIds.slice(4998));
  });

  await t.step("listRollouts() lists newest first, by state and by page", async () => {
    // One device each: a device is in at most one active rollout.
    const ids = await registerMany(db, 5);
    const made: string[] = [];
    for (const id of ids) made.push((await createRollout(db, newRollout([id]))).id);
    const newest: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listRollouts(db, { limit: 2, cursor });
      newest.push(...page.items.map((r) => r.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    assert.deepEqual(newest.slice(0, 5), made.toReversed());
    assert.equal(new Set(newest).size, newest.length);
    await updateRollout(db, made[0]!, { state: "cancelled" });
    const cancelled = await listRollouts(db, { state: "cancelled", limit: 1000 });
    assert.ok(cancelled.items.some((r) => r.id === made[0]));
    assert.ok(cancelled.items.every((r) => r.state === "cancelled"));
    const active = await listActiveRollouts(db);
    assert.ok(active.every((r) => ["running", "paused", "waiting_approval"].includes(r.state)));
    assert.ok(active.some((r) => r.id === made[1]));
    assert.ok(!active.some((r) => r.id === made[0]));
  });

  await t.step("updateRollout() changes state, stage, halt and snapshot", async () => {
    const [device] = await registerMany(db, 1) as [string];
    const rollout = await createRollout(db, newRollout([device]));
    const snapshot = { value: "baking", context: { stage: 1, since: 123 } };
    const updated = await updateRollout(db, rollout.id, {
      state: "halted",
      stage: 1,
      haltReason: "device reported digest mismatch (0xFF)",
      haltDevice: device,
      snapshot,
    });
    assert.equal(updated?.state, "halted");
    assert.equal(updated?.stage, 1);
    assert.equal(updated?.haltDevice, device);
    assert.deepEqual(updated?.snapshot, snapshot);
    assert.ok(updated!.updatedAt >= rollout.updatedAt);
    assert.equal(await updateRollout(db, crypto.randomUUID(), { stage: 2 }), undefined);
    await assert.rejects(
      // @ts-expect-error: the database refuses a state the type does not allow either.
      updateRollout(db, rollout.id, { state: "exploded" }),
      (error) => error instanceof InvalidDataError && error.constraint === "rollouts_state_known",
    );
  });

  await t.step("moveRollout() changes the state only from the one it expects", async () => {
    const [device] = await registerMany(db, 1) as [string];
    const rollout = await createRollout(db, newRollout([device], { state: "scheduled" }));
    assert.equal(
      await moveRollout(db, rollout.id, { from: "running", to: "cancelled" }),
      undefined,
    );
    const moved = await moveRollout(db, rollout.id, { from: "scheduled", to: "running" });
    assert.equal(moved?.state, "running");
    assert.equal(
      await moveRollout(db, rollout.id, { from: "scheduled", to: "cancelled" }),
      undefined,
      "a second move from scheduled finds it moved",
    );
  });

  await t.step("joinRollout() adds a device last, skipped if it runs the artifact", async () => {
    const [a, b, c] = await registerMany(db, 3) as [string, string, string];
    const rollout = await createRollout(db, newRollout([a]));
    assert.deepEqual(await joinRollout(db, rollout.id, b), { position: 1, skipped: false });
    assert.equal(await joinRollout(db, rollout.id, b), null, "not twice");
    await updateDevices(db, [{ id: c, digest: rollout.artifactDigest! }]);
    assert.deepEqual(await joinRollout(db, rollout.id, c), { position: 2, skipped: true });
    const stored = await getRollout(db, rollout.id);
    assert.deepEqual([stored?.deviceCount, stored?.joined], [3, 2]);
    assert.deepEqual(await listRolloutDeviceIds(db, rollout.id), [a, b, c]);
    assert.equal(await leaveRollout(db, rollout.id, b), false, "only the last one leaves");
    assert.equal(await leaveRollout(db, rollout.id, c), true);
    const left = await getRollout(db, rollout.id);
    assert.deepEqual([left?.deviceCount, left?.joined], [2, 1]);
    assert.deepEqual(await listRolloutDeviceIds(db, rollout.id), [a, b]);
    await updateRollout(db, rollout.id, { state: "completed" });
    assert.equal(await joinRollout(db, rollout.id, c), null, "a finished rollout takes none");
  });

  await t.step(
    "upsertRolloutDevices() replaces rows; recovery and token lookups see them",
    async () => {
      const ids = await registerMany(db, 4);
      const rollout = await createRollout(db, newRollout(ids));
      const token = crypto.getRandomValues(new Uint8Array(16)).toHex();
      await upsertRolloutDevices(db, [
        { ...row(rollout.id, ids[1]!, 1, "initiated"), token, attempt: 1, deadline: 1_700_000 },
        { ...row(rollout.id, ids[2]!, 2, "activated"), lastStatus: 0x10 },
      ]);
      await upsertRolloutDevices(db, [
        { ...row(rollout.id, ids[1]!, 1, "received"), token, attempt: 1, lastStatus: 0 },
      ]);
      assert.deepEqual(await countRolloutDevices(db, rollout.id), {
        pending: 2,
        received: 1,
        activated: 1,
      });
      const started = await loadStartedRolloutDevices(db, rollout.id);
      assert.deepEqual(started.map((d) => [d.deviceId, d.state, d.lastStatus, d.deadline]), [
        [ids[1], "received", 0, null],
        [ids[2], "activated", 0x10, null],
      ]);
      const found = await findRolloutDeviceByToken(db, token);
      assert.equal(found?.deviceId, ids[1]);
      assert.equal(found?.attempt, 1);
      assert.equal(await findRolloutDeviceByToken(db, "00".repeat(16)), undefined);
      const received = await listRolloutDevices(db, rollout.id, { state: "received" });
      assert.deepEqual(received.items.map((d) => d.deviceId), [ids[1]]);
      await assert.rejects(
        upsertRolloutDevices(db, [{ ...row(rollout.id, ids[0]!, 0, "initiated"), token: "xyz" }]),
        InvalidDataError,
      );
    },
  );

  await t.step("upsertRolloutDevices() inserts the rows a rollout did not have yet", async () => {
    const [a, b] = await registerMany(db, 2) as [string, string];
    const rollout = await createRollout(db, newRollout([a]));
    await upsertRolloutDevices(db, [
      { ...row(rollout.id, a, 0, "initiated"), attempt: 1 },
      { ...row(rollout.id, b, 1, "received"), attempt: 2, lastStatus: 0 },
    ]);
    const listed = await listRolloutDevices(db, rollout.id);
    assert.deepEqual(listed.items.map((d) => [d.deviceId, d.position, d.state, d.attempt]), [
      [a, 0, "initiated", 1],
      [b, 1, "received", 2],
    ]);
  });

  await t.step("deviceRolloutHistory() lists a device's rollouts, newest first", async () => {
    const [id] = await registerMany(db, 1) as [string];
    const first = await createRollout(db, newRollout([id], { state: "completed" }));
    const second = await createRollout(db, newRollout([id], { artifactDigest: digestOf("ef") }));
    await upsertRolloutDevices(db, [row(second.id, id, 0, "activated")]);
    const history = await deviceRolloutHistory(db, id);
    assert.deepEqual(history.map((h) => [h.rolloutId, h.state, h.rollout.artifactDigest]), [
      [second.id, "activated", digestOf("ef")],
      [first.id, "pending", digestOf("ab")],
    ]);
    assert.equal((await deviceRolloutHistory(db, id, { limit: 1 })).length, 1);
  });

  await t.step("appendEvents() keeps order and listEvents() reads after an id", async () => {
    const rolloutId = crypto.randomUUID();
    const ids = await appendEvents(
      db,
      Array.from({ length: 12 }, (_, n) => ({
        rolloutId,
        type: "device.transition",
        actor: n === 0 ? "ops-token" : null,
        data: { n },
      })),
    );
    assert.equal(ids.length, 12);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    const firstPage = await listEvents(db, { rolloutId, limit: 5 });
    assert.deepEqual(firstPage.map((e) => e.data.n), [0, 1, 2, 3, 4]);
    assert.equal(firstPage[0]?.actor, "ops-token");
    assert.ok(firstPage[0]?.at instanceof Date);
    const rest = await listEvents(db, { rolloutId, after: firstPage.at(-1)!.id });
    assert.deepEqual(rest.map((e) => e.data.n), [5, 6, 7, 8, 9, 10, 11]);
    const tail = await listEvents(db, { after: ids.at(-1)! });
    assert.ok(tail.every((e) => e.id > ids.at(-1)!));
  });

  await t.step("createApiToken() stores only the hash of the plaintext", async () => {
    const name = `ops-${crypto.randomUUID()}`;
    const { token, plaintext } = await createApiToken(db, { name, role: "operator" });
    assert.match(plaintext, /^flt_[A-Za-z0-9_-]{43}$/);
    assert.equal(token.role, "operator");
    assert.equal("hash" in token, false);
    const stored = await db.select().from(apiTokens);
    const mine = stored.find((r) => r.id === token.id);
    assert.equal(mine?.hash, await hashToken(plaintext));
    assert.ok(!JSON.stringify(stored).includes(plaintext), "plaintext never stored");
    assert.deepEqual(await findApiToken(db, plaintext), token);
    assert.equal(await findApiToken(db, plaintext + "x"), undefined);
    assert.equal(await findApiToken(db, ""), undefined);
  });

  await t.step("api tokens: names are unique among live tokens, revoke ends a token", async () => {
    const name = `admin-${crypto.randomUUID()}`;
    const plaintext = "flotilla-admin-token-from-env";
    const { token } = await createApiToken(db, { name, role: "admin", plaintext });
    await assert.rejects(
      createApiToken(db, { name, role: "viewer" }),
      (error) =>
        error instanceof ConflictError &&
        error.message === `Cannot create token: name "${name}" is in use`,
    );
    await assert.rejects(
      createApiToken(db, { name: `${name}-2`, role: "viewer", plaintext }),
      ConflictError,
    );
    await assert.rejects(
      createApiToken(db, { name: "short", role: "viewer", plaintext: "x" }),
      RangeError,
    );
    await assert.rejects(
      // @ts-expect-error: an unknown role is refused by the database too.
      createApiToken(db, { name: `${name}-3`, role: "root" }),
      InvalidDataError,
    );
    assert.equal(token.lastUsedAt, null);
    await touchApiToken(db, token.id);
    assert.ok((await findApiToken(db, plaintext))?.lastUsedAt instanceof Date);
    // Another admin stays live: the last one cannot be revoked (see the next step).
    await createApiToken(db, { name: `${name}-spare`, role: "admin" });
    assert.equal(await revokeApiToken(db, token.id), true);
    assert.equal(await revokeApiToken(db, token.id), false);
    assert.equal(await findApiToken(db, plaintext), undefined);
    const listed = await listApiTokens(db);
    const revoked = listed.find((t) => t.id === token.id);
    assert.ok(revoked?.revokedAt instanceof Date);
    assert.ok(listed.every((t) => !("hash" in t)));
    const reused = await createApiToken(db, { name, role: "viewer" });
    assert.equal(reused.token.name, name, "a revoked token's name can be reused");
  });

  await t.step(
    "revokeApiToken() refuses the last live admin token with a ConflictError",
    async () => {
      for (const token of await listApiTokens(db)) {
        if (token.role !== "admin" || token.revokedAt) continue;
        const others = (await listApiTokens(db)).filter((t) =>
          t.role === "admin" && !t.revokedAt && t.id !== token.id
        );
        if (others.length > 0) assert.equal(await revokeApiToken(db, token.id), true);
      }
      const live = (await listApiTokens(db)).filter((t) => t.role === "admin" && !t.revokedAt);
      const last = live.length === 1
        ? live[0]!
        : (await createApiToken(db, { name: `last-${crypto.randomUUID()}`, role: "admin" })).token;
      await assert.rejects(
        revokeApiToken(db, last.id),
        (error) =>
          error instanceof ConflictError &&
          error.message ===
            `Cannot revoke token: "${last.name}" is the last live admin token; create another admin first`,
      );
      const viewer = await createApiToken(db, { name: `v-${crypto.randomUUID()}`, role: "viewer" });
      assert.equal(await revokeApiToken(db, viewer.token.id), true, "other roles are revoked");
      const second = await createApiToken(db, { name: `a-${crypto.randomUUID()}`, role: "admin" });
      const both = await Promise.allSettled([
        revokeApiToken(db, last.id),
        revokeApiToken(db, second.token.id),
      ]);
      assert.deepEqual(
        both.map((r) => r.status).sort(),
        ["fulfilled", "rejected"],
        "of two concurrent revocations of the last two admins, one is refused",
      );
      assert.equal(
        (await listApiTokens(db)).filter((t) => t.role === "admin" && !t.revokedAt).length,
        1,
      );
    },
  );

  await t.step(
    "findApiToken({ revoked: true }) finds a revoked token; replaceApiToken() rotates a name",
    async () => {
      const name = `env-${crypto.randomUUID()}`;
      const first = await createApiToken(db, { name, role: "viewer" });
      const second = await replaceApiToken(db, { name, role: "viewer" });
      assert.equal(await findApiToken(db, first.plaintext), undefined);
      const revoked = await findApiToken(db, first.plaintext, { revoked: true });
      assert.ok(revoked?.revokedAt instanceof Date);
      assert.equal((await findApiToken(db, second.plaintext))?.name, name);
    },
  );

  await t.step("server state and the sequence store keep values and only move up", async () => {
    const key = `k-${crypto.randomUUID()}`;
    assert.equal(await getServerState(db, key), undefined);
    await setServerState(db, key, "one");
    await setServerState(db, key, "two");
    assert.equal(await getServerState(db, key), "two");

    const store = sequenceStore(db, { key: `seq-${crypto.randomUUID()}` });
    assert.equal(await store.load(), 0n);
    await store.persist(1000n);
    assert.equal(await store.load(), 1000n);
    await store.persist(1000n);
    await assert.rejects(
      store.persist(999n),
      (error) =>
        error instanceof RangeError &&
        error.message === "Cannot persist sequence: 999 is below the stored 1000",
    );
    assert.equal(await store.load(), 1000n);
    await store.persist(MAX_U64);
    assert.equal(await store.load(), MAX_U64);
    await assert.rejects(store.persist(MAX_U64 + 1n), RangeError);
    const other = sequenceStore(db, { key: `seq-${crypto.randomUUID()}` });
    assert.equal(await other.load(), 0n, "keys are independent");
  });

  await t.step(
    "selectDeviceIds(), loadPublicKeys() and listRolloutDeviceIds() read in bulk",
    async () => {
      const tag = { batch: crypto.randomUUID() };
      const ids = await registerMany(db, 4, tag);
      assert.deepEqual(await selectDeviceIds(db, { tags: tag }), ids);
      const keys = await loadPublicKeys(db, [...ids, crypto.randomUUID()]);
      assert.equal(keys.size, 4);
      assert.equal(keys.get(ids[0]!), KEY);
      const order = [ids[2]!, ids[0]!, ids[3]!, ids[1]!];
      const rollout = await createRollout(db, newRollout(order));
      assert.deepEqual(await listRolloutDeviceIds(db, rollout.id), order);
      assert.equal((await loadSequences(db, ids)).size, 0);
    },
  );

  await groupCommitSteps(t, db);
}

async function groupCommitSteps(t: Deno.TestContext, db: Db): Promise<void> {
  await t.step("GroupCommitWriter commits writes queued together as one batch", async () => {
    const commits: CommitInfo[] = [];
    const writer = new GroupCommitWriter(db, { maxOps: 1000, onCommit: (c) => commits.push(c) });
    const rolloutId = crypto.randomUUID();
    const done = Array.from(
      { length: 200 },
      (_, n) => writer.enqueue({ kind: "event", event: { rolloutId, type: "t", data: { n } } }),
    );
    assert.equal(writer.waiting, 200);
    await Promise.all(done);
    assert.deepEqual(commits.map((c) => c.size), [200]);
    const stored = await listEvents(db, { rolloutId, limit: 1000 });
    assert.deepEqual(stored.map((e) => e.data.n), Array.from({ length: 200 }, (_, n) => n));
    await writer.close();
  });

  await t.step("GroupCommitWriter starts a batch at maxOps without waiting", async () => {
    const sizes: number[] = [];
    const writer = new GroupCommitWriter(db, {
      maxOps: 10,
      maxDelayMs: 60_000,
      onCommit: (c) => sizes.push(c.size),
    });
    const rolloutId = crypto.randomUUID();
    const done = Array.from(
      { length: 25 },
      (_, n) => writer.enqueue({ kind: "event", event: { rolloutId, type: "t", data: { n } } }),
    );
    await Promise.all(done.slice(0, 20));
    assert.deepEqual(sizes, [10, 10]);
    await writer.close();
    await Promise.all(done);
    assert.deepEqual(sizes, [10, 10, 5]);
    const stored = await listEvents(db, { rolloutId, limit: 1000 });
    assert.deepEqual(stored.map((e) => e.data.n), Array.from({ length: 25 }, (_, n) => n));
  });

  await t.step("GroupCommitWriter resolves a write only once it is committed", async () => {
    const [id] = await registerMany(db, 1) as [string];
    const rollout = await createRollout(db, newRollout([id]));
    const writer = new GroupCommitWriter(db);
    const token = "ab".repeat(16);
    await writer.enqueue({
      kind: "rollout_device",
      row: { ...row(rollout.id, id, 0, "initiated"), token, attempt: 1 },
    });
    // Read through the database handle, not the writer: the row is committed and visible.
    const found = await findRolloutDeviceByToken(db, token);
    assert.equal(found?.state, "initiated");
    await writer.close();
  });

  await t.step("GroupCommitWriter coalesces repeated writes to one row", async () => {
    const [a, b] = await registerMany(db, 2) as [string, string];
    const rollout = await createRollout(db, newRollout([a, b]));
    const writer = new GroupCommitWriter(db);
    await Promise.all([
      writer.enqueue({ kind: "rollout_device", row: row(rollout.id, a, 0, "initiated") }),
      writer.enqueue({ kind: "rollout", id: rollout.id, patch: { stage: 1 } }),
      writer.enqueue({
        kind: "rollout_device",
        row: { ...row(rollout.id, a, 0, "received"), lastStatus: 0 },
      }),
      writer.enqueue({ kind: "rollout_device", row: row(rollout.id, b, 1, "initiated") }),
      writer.enqueue({ kind: "rollout", id: rollout.id, patch: { state: "paused" } }),
      writer.enqueue({ kind: "activation", deviceId: a, digest: digestOf("a1") }),
      writer.enqueue({ kind: "seen", deviceId: a, at: new Date("2031-01-01T00:00:00Z") }),
      writer.enqueue({ kind: "seen", deviceId: a, at: new Date("2030-01-01T00:00:00Z") }),
    ]);
    const rows = await listRolloutDevices(db, rollout.id);
    assert.deepEqual(rows.items.map((r) => [r.state, r.lastStatus]), [
      ["received", 0],
      ["initiated", null],
    ]);
    const updated = await getRollout(db, rollout.id);
    assert.equal(updated?.state, "paused");
    assert.equal(updated?.stage, 1, "patches of one rollout merge");
    const device = await getDevice(db, a);
    assert.equal(device?.currentDigest, digestOf("a1"));
    assert.equal(device?.lastSeenAt?.toISOString(), "2031-01-01T00:00:00.000Z");
    await writer.close();
  });

  await t.step(
    "GroupCommitWriter rejects a refused batch's writes and commits the next",
    async () => {
      const errors: unknown[] = [];
      const writer = new GroupCommitWriter(db, { onError: (e) => errors.push(e) });
      const rolloutId = crypto.randomUUID();
      const good = writer.enqueue({ kind: "event", event: { rolloutId, type: "first" } });
      // No such rollout: the foreign key fails the rollout's writes, all in this batch.
      const bad = writer.enqueue({
        kind: "rollout_device",
        row: row(rolloutId, crypto.randomUUID(), 0, "initiated"),
      });
      const flushed = writer.flush();
      const later = writer.enqueue({ kind: "event", event: { rolloutId, type: "later" } });
      await assert.rejects(good, InvalidDataError);
      await assert.rejects(bad, InvalidDataError);
      await flushed;
      await later;
      assert.equal(errors.length, 1);
      const stored = await listEvents(db, { rolloutId });
      assert.deepEqual(
        stored.map((e) => e.type),
        ["later"],
        "nothing of the failed batch is written",
      );
      await writer.close();
    },
  );

  await t.step(
    "GroupCommitWriter isolates a refused rollout: another rollout's writes in the batch commit",
    async () => {
      const [a, b] = await registerMany(db, 2) as [string, string];
      const rollout = await createRollout(db, newRollout([a, b]));
      const missing = crypto.randomUUID();
      const errors: unknown[] = [];
      const commits: CommitInfo[] = [];
      const writer = new GroupCommitWriter(db, {
        maxDelayMs: 60_000,
        onError: (e) => errors.push(e),
        onCommit: (c) => commits.push(c),
      });
      const writes = [
        writer.enqueue({ kind: "event", event: { rolloutId: missing, type: "doomed" } }),
        writer.enqueue({ kind: "rollout", id: missing, patch: { stage: 1 } }),
        writer.enqueue({ kind: "rollout_device", row: row(rollout.id, a, 0, "activated") }),
        writer.enqueue({ kind: "event", event: { rolloutId: rollout.id, type: "kept" } }),
        writer.enqueue({
          kind: "activation",
          deviceId: a,
          digest: digestOf("f1"),
          rolloutId: rollout.id,
        }),
        writer.enqueue({ kind: "rollout", id: rollout.id, patch: { stage: 1 } }),
        writer.enqueue({ kind: "seen", deviceId: b, at: new Date("2031-01-01T00:00:00Z") }),
      ];
      await writer.flush();
      const results = await Promise.allSettled(writes);
      assert.deepEqual(results.map((r) => r.status), [
        "rejected",
        "rejected",
        "fulfilled",
        "fulfilled",
        "fulfilled",
        "fulfilled",
        "fulfilled",
      ]);
      assert.deepEqual(commits.map((c) => c.size), [7], "one transaction for the batch");
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof InvalidDataError);
      assert.equal((await getRollout(db, rollout.id))?.stage, 1);
      assert.equal((await listRolloutDevices(db, rollout.id)).items[0]?.state, "activated");
      assert.equal((await getDevice(db, a))?.currentDigest, digestOf("f1"));
      assert.ok((await getDevice(db, b))?.lastSeenAt instanceof Date);
      assert.deepEqual((await listEvents(db, { rolloutId: rollout.id })).map((e) => e.type), [
        "kept",
      ]);
      assert.deepEqual(await listEvents(db, { rolloutId: missing }), []);
      await writer.close();
    },
  );

  await t.step(
    "GroupCommitWriter keeps a batch the database cannot take and retries it until it lands",
    async () => {
      let refusals = 3;
      // The storage boundary says "disk full" three times, as PGlite does on a full disk.
      const flaky = {
        transaction: (work: Parameters<Db["transaction"]>[0]) => {
          if (refusals-- > 0) {
            const cause = Object.assign(
              new Error('could not extend file "base/5/1": No space left on device'),
              { code: "53100" },
            );
            return Promise.reject(new Error("Failed query: insert ... params: {...}", { cause }));
          }
          return db.transaction(work);
        },
      } as unknown as Db;
      const retries: (number | undefined)[] = [];
      const writer = new GroupCommitWriter(flaky, {
        retryMinMs: 5,
        retryMaxMs: 20,
        onError: (_e, _size, retryInMs) => retries.push(retryInMs),
      });
      const rolloutId = crypto.randomUUID();
      const first = writer.enqueue({ kind: "event", event: { rolloutId, type: "first" } });
      await new Promise((resolve) => setTimeout(resolve, 2));
      const second = writer.enqueue({ kind: "event", event: { rolloutId, type: "second" } });
      await new Promise((resolve) => setTimeout(resolve, 8));
      assert.equal(
        writer.unavailable,
        'could not extend file "base/5/1": No space left on device (SQLSTATE 53100)',
      );
      await Promise.all([first, second]);
      assert.deepEqual(retries, [5, 10, 20]);
      assert.equal(writer.failedCommits, 3);
      assert.equal(writer.unavailable, undefined);
      assert.deepEqual((await listEvents(db, { rolloutId })).map((e) => e.type), [
        "first",
        "second",
      ]);
      await writer.close();
    },
  );

  await t.step(
    "GroupCommitWriter.close() gives up after its grace while the database is unavailable",
    async () => {
      const down = {
        transaction: () =>
          Promise.reject(
            Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
          ),
      } as unknown as Db;
      const writer = new GroupCommitWriter(down, {
        retryMinMs: 5,
        retryMaxMs: 5,
        closeGraceMs: 50,
        onError: () => {},
      });
      const write = writer.enqueue({ kind: "event", event: { type: "lost" } });
      await writer.close();
      await assert.rejects(write, /the database is unavailable and the writer closed/);
    },
  );

  await t.step("GroupCommitWriter fails a patch of a missing rollout", async () => {
    const writer = new GroupCommitWriter(db, { onError: () => {} });
    const id = crypto.randomUUID();
    await assert.rejects(
      writer.enqueue({ kind: "rollout", id, patch: { stage: 1 } }),
      (error) =>
        error instanceof InvalidDataError &&
        error.message === `Cannot update rollout: no rollout "${id}"`,
    );
    await writer.close();
  });

  await t.step("GroupCommitWriter.close() drains the queue and refuses later writes", async () => {
    const writer = new GroupCommitWriter(db, { maxDelayMs: 60_000 });
    const rolloutId = crypto.randomUUID();
    const queued = writer.enqueue({ kind: "event", event: { rolloutId, type: "queued" } });
    await writer.close();
    await queued;
    assert.equal((await listEvents(db, { rolloutId })).length, 1);
    await assert.rejects(
      writer.enqueue({ kind: "event", event: { rolloutId, type: "late" } }),
      { message: "Cannot enqueue write: the writer is closed" },
    );
    assert.throws(() => new GroupCommitWriter(db, { maxOps: 0 }), RangeError);
  });

  await t.step(
    "GroupCommitWriter keeps the highest sequence id and never moves it back",
    async () => {
      const [id] = await registerMany(db, 1);
      const writer = new GroupCommitWriter(db, { maxDelayMs: 60_000 });
      const big = MAX_U64 - 5n;
      await Promise.all([
        writer.enqueue({ kind: "sequence", deviceId: id!, sequence: 7n }),
        writer.enqueue({ kind: "sequence", deviceId: id!, sequence: big }),
        writer.enqueue({ kind: "sequence", deviceId: id!, sequence: 9n }),
        writer.flush(),
      ]);
      assert.equal((await loadSequences(db, [id!])).get(id!), big);
      const late = writer.enqueue({ kind: "sequence", deviceId: id!, sequence: 3n });
      await writer.flush();
      await late;
      assert.equal((await loadSequences(db, [id!])).get(id!), big);
      await writer.close();
    },
  );

  await t.step("GroupCommitWriter reports committed events with their ids, in order", async () => {
    const seen: { id: number; type: string }[] = [];
    const writer = new GroupCommitWriter(db, {
      maxDelayMs: 60_000,
      onEvents: (events) => seen.push(...events.map((e) => ({ id: e.id, type: e.type }))),
    });
    const rolloutId = crypto.randomUUID();
    const done = ["a", "b", "c"].map((type) =>
      writer.enqueue({ kind: "event", event: { rolloutId, type } })
    );
    await writer.flush();
    await Promise.all(done);
    const stored = await listEvents(db, { rolloutId });
    assert.deepEqual(seen, stored.map((e) => ({ id: e.id, type: e.type })));
    assert.deepEqual(seen.map((e) => e.type), ["a", "b", "c"]);
    await writer.close();
  });
}
