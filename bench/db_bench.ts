/**
 * Storage throughput on PGlite in a temp data dir (the service's default): rollout creation with
 * 100,000 targets, and group commit against one transaction per write. `deno task bench`.
 * With FLOTILLA_BENCH_DATABASE_URL set (a postgres:// URL to a scratch database) it measures
 * PostgreSQL instead.
 */
import { sql } from "drizzle-orm";
import {
  createRollout,
  GroupCommitWriter,
  openDatabase,
  type RolloutDeviceRow,
  upsertRolloutDevices,
} from "../db/mod.ts";

const TARGETS = 100_000;
const WRITES = 5_000;

const url = Deno.env.get("FLOTILLA_BENCH_DATABASE_URL");
const dataDir = url ? undefined : await Deno.makeTempDir({ prefix: "flotilla-bench-" });
const database = await openDatabase(url ? { url } : { dataDir });
const { db } = database;
globalThis.addEventListener("unload", () => {
  if (dataDir) Deno.removeSync(dataDir, { recursive: true });
});

const inserted = await db.execute(sql`
  insert into devices (id, public_key)
  select gen_random_uuid(), 'bench' from generate_series(1, ${TARGETS}) returning id`);
const deviceIds = (Array.isArray(inserted) ? inserted : (inserted as { rows: unknown[] }).rows)
  .map((row) => (row as { id: string }).id);

function request(ids: readonly string[]) {
  return {
    artifactDigest: "a".repeat(64),
    artifactUrl: "https://artifacts.example/a",
    policy: { name: "bench" },
    policyName: "bench",
    policySha256: "b".repeat(64),
    targets: { all: true },
    deviceIds: ids,
    // Completed, so the next round may take the same devices (one active rollout per device).
    state: "completed" as const,
  };
}

const writeTarget = await createRollout(db, request(deviceIds.slice(0, WRITES)));
let round = 0;

function rows(): RolloutDeviceRow[] {
  round++;
  return deviceIds.slice(0, WRITES).map((deviceId, position) => ({
    rolloutId: writeTarget.id,
    deviceId,
    position,
    state: "initiated",
    token: null,
    attempt: round,
    deadline: null,
    lastStatus: null,
  }));
}

Deno.bench(`createRollout() with ${TARGETS} targets`, { n: 3, warmup: 1 }, async () => {
  await createRollout(db, request(deviceIds));
});

Deno.bench(
  `GroupCommitWriter: ${WRITES} device upserts + ${WRITES} events`,
  { n: 5, warmup: 1 },
  async () => {
    const writer = new GroupCommitWriter(db);
    const done: Promise<void>[] = [];
    for (const row of rows()) {
      done.push(writer.enqueue({ kind: "rollout_device", row }));
      done.push(writer.enqueue({
        kind: "event",
        event: { rolloutId: row.rolloutId, deviceId: row.deviceId, type: "device.initiated" },
      }));
    }
    await Promise.all(done);
    await writer.close();
  },
);

Deno.bench(
  `one transaction per write: ${WRITES / 10} device upserts`,
  { n: 5, warmup: 1 },
  async () => {
    for (const row of rows().slice(0, WRITES / 10)) {
      await db.transaction((tx) => upsertRolloutDevices(tx, [row]));
    }
  },
);
