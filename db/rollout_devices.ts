/** Rollout devices: each device's state within a rollout, written by the engine. */
import { and, asc, count, desc, eq, gt, ne, type SQL, sql } from "drizzle-orm";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { type Page, pageLimit, rowsOf } from "./page.ts";
import { uuidArray } from "./uuid_array.ts";
import { devices, PENDING, rolloutDevices, rollouts, SKIPPED } from "./schema.ts";
import type { RolloutAction } from "../actors/states.ts";

/** A rollout_devices row. */
export type RolloutDevice = typeof rolloutDevices.$inferSelect;

/** The engine's full view of one device in one rollout, as written by an upsert. */
export type RolloutDeviceRow = Omit<RolloutDevice, "updatedAt" | "digest">;

/** A device's part in one rollout, for its history. */
export interface DeviceRolloutHistoryItem extends RolloutDevice {
  rollout: {
    state: string;
    action: RolloutAction;
    artifactDigest: string | null;
    createdAt: Date;
    name: string | null;
  };
}

/** Options for {@linkcode listRolloutDevices}. */
export interface ListRolloutDevicesOptions {
  /** Only devices in this state. */
  state?: string;
  /** The `nextCursor` of the previous page: a position. */
  cursor?: number;
  /** Page size, 1 to 1000; default 100. */
  limit?: number;
}

/** Options for {@linkcode deviceRolloutHistory}. */
export interface DeviceRolloutHistoryOptions {
  /** At most this many rollouts, 1 to 1000; default 100. */
  limit?: number;
  /** Only rollouts older than this rollout id: the last one of the previous page. */
  cursor?: string;
  /** One rollout more than `limit`, so a caller paging knows whether another page follows. */
  peek?: boolean;
}

// Keeps each statement far below PostgreSQL's 65,535 bind parameters.
const UPSERT_CHUNK = 2000;

/**
 * Inserts or replaces rows by (rollout, device); the caller commits them as one unit if it must.
 * Rows travel as one JSON parameter: the engine writes thousands a second, and building a
 * parameter per column cost more than the database's own work. Rows that exist (every target has
 * one from creation) are updated by primary key; only the rest take the slower insert path.
 */
export async function upsertRolloutDevices(
  db: Db,
  rows: readonly RolloutDeviceRow[],
): Promise<void> {
  const byRollout = new Map<string, Map<string, RolloutDeviceRow>>();
  for (const row of rows) {
    let map = byRollout.get(row.rolloutId);
    if (!map) byRollout.set(row.rolloutId, map = new Map());
    map.set(row.deviceId, row);
  }
  for (const [rolloutId, map] of byRollout) {
    const ids = [...map.keys()];
    for (let i = 0; i < ids.length; i += UPSERT_CHUNK) {
      const chunk = ids.slice(i, i + UPSERT_CHUNK);
      const json = JSON.stringify(Object.fromEntries(chunk.map((id) => [id, map.get(id)])));
      const updated = rowsOf<{ id: string }>(
        await guard(
          db.execute(sql`
            update rollout_devices r set
              position = (j.v -> r.device_id::text ->> 'position')::integer,
              state = j.v -> r.device_id::text ->> 'state',
              token = j.v -> r.device_id::text ->> 'token',
              attempt = (j.v -> r.device_id::text ->> 'attempt')::integer,
              deadline = (j.v -> r.device_id::text ->> 'deadline')::bigint,
              last_status = (j.v -> r.device_id::text ->> 'lastStatus')::integer,
              updated_at = now()
            from (select ${json}::jsonb as v) j
            where r.rollout_id = ${rolloutId}::uuid
              and r.device_id = any(${uuidArray(chunk, "Cannot write rollout devices")}::uuid[])
            returning r.device_id as id`),
          "Cannot write rollout devices",
        ),
      );
      if (updated.length === chunk.length) continue;
      const found = new Set(updated.map((row) => row.id));
      await insertRolloutDevices(
        db,
        chunk.filter((id) => !found.has(id)).map((id) => map.get(id)!),
      );
    }
  }
}

async function insertRolloutDevices(db: Db, rows: readonly RolloutDeviceRow[]): Promise<void> {
  await guard(
    db.execute(sql`
      insert into rollout_devices
        (rollout_id, device_id, position, state, token, attempt, deadline, last_status)
      select v."rolloutId", v."deviceId", v.position, v.state, v.token, v.attempt, v.deadline,
        v."lastStatus"
      from json_to_recordset(${JSON.stringify(rows)}::json) as v("rolloutId" uuid, "deviceId" uuid,
        position integer, state text, token text, attempt integer, deadline bigint,
        "lastStatus" integer)
      on conflict (rollout_id, device_id) do update set
        position = excluded.position, state = excluded.state, token = excluded.token,
        attempt = excluded.attempt, deadline = excluded.deadline,
        last_status = excluded.last_status, updated_at = now()`),
    "Cannot write rollout devices",
  );
}

/** How many of a rollout's devices are in each state. */
export async function countRolloutDevices(
  db: Db,
  rolloutId: string,
): Promise<Record<string, number>> {
  const rows = await guard(
    db.select({ state: rolloutDevices.state, n: count() })
      .from(rolloutDevices)
      .where(eq(rolloutDevices.rolloutId, rolloutId))
      .groupBy(rolloutDevices.state),
    "Cannot count rollout devices",
  );
  return Object.fromEntries(rows.map((row) => [row.state, row.n]));
}

/**
 * [SRUP-10] Why a key rotation's `skipped` devices were skipped: `frame_version` for those
 * registered with frame version 1 (no KEY_ROTATE), `key_trusted` for the rest (they trusted the key
 * already). Read from the devices as registered now.
 */
export async function countRotationSkips(
  db: Db,
  rolloutId: string,
): Promise<{ key_trusted: number; frame_version: number }> {
  const [row] = await guard(
    db.select({
      all: sql<number>`count(*)::int`,
      v1: sql<number>`count(*) filter (where coalesce(${devices.frameVersion}, 2) < 2)::int`,
    }).from(rolloutDevices)
      .leftJoin(devices, eq(devices.id, rolloutDevices.deviceId))
      .where(and(eq(rolloutDevices.rolloutId, rolloutId), eq(rolloutDevices.state, SKIPPED))),
    "Cannot count skipped rollout devices",
  );
  const v1 = Number(row?.v1 ?? 0);
  return { key_trusted: Number(row?.all ?? 0) - v1, frame_version: v1 };
}

/**
 * How many of a rollout's devices are in each state, per stage: `ends` are the stages' end
 * positions (exclusive), so a device at position p is in the first stage whose end exceeds p.
 */
export async function countRolloutDevicesByStage(
  db: Db,
  rolloutId: string,
  ends: readonly number[],
): Promise<Record<string, number>[]> {
  const bounds = `{${ends.map((end) => Math.trunc(end)).join(",")}}`;
  const rows = rowsOf<{ stage: number; state: string; n: number }>(
    await guard(
      db.execute(sql`
        select (select count(*) from unnest(${bounds}::int[]) e where e <= d.position)::int
            as stage,
          d.state, count(*)::int as n
        from ${rolloutDevices} d
        where d.rollout_id = ${rolloutId}
        group by 1, 2`),
      "Cannot count rollout devices by stage",
    ),
  );
  const stages = ends.map((): Record<string, number> => ({}));
  for (const row of rows) {
    const stage = stages[Math.min(row.stage, stages.length - 1)];
    if (stage) stage[row.state] = (stage[row.state] ?? 0) + row.n;
  }
  return stages;
}

/** A rollout's devices in rollout order. */
export async function listRolloutDevices(
  db: Db,
  rolloutId: string,
  options: ListRolloutDevicesOptions = {},
): Promise<Page<RolloutDevice, number>> {
  const limit = pageLimit(options.limit);
  const filters: SQL[] = [eq(rolloutDevices.rolloutId, rolloutId)];
  if (options.state !== undefined) filters.push(eq(rolloutDevices.state, options.state));
  if (options.cursor !== undefined) filters.push(gt(rolloutDevices.position, options.cursor));
  const rows = await guard(
    db.select().from(rolloutDevices)
      .where(and(...filters))
      .orderBy(asc(rolloutDevices.position))
      .limit(limit + 1),
    "Cannot list rollout devices",
  );
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? items.at(-1)!.position : null };
}

/** Every device of a rollout the engine has touched (state other than `pending`), for recovery. */
export async function loadStartedRolloutDevices(
  db: Db,
  rolloutId: string,
): Promise<RolloutDevice[]> {
  return await guard(
    db.select().from(rolloutDevices)
      .where(and(eq(rolloutDevices.rolloutId, rolloutId), ne(rolloutDevices.state, PENDING)))
      .orderBy(asc(rolloutDevices.position)),
    "Cannot load rollout devices",
  );
}

/** The rollout device holding this transaction token, or undefined. */
export async function findRolloutDeviceByToken(
  db: Db,
  token: string,
): Promise<RolloutDevice | undefined> {
  const [row] = await guard(
    db.select().from(rolloutDevices).where(eq(rolloutDevices.token, token)).limit(1),
    "Cannot find rollout device",
  );
  return row;
}

/** One device's part in every rollout that included it, newest rollout first. */
export async function deviceRolloutHistory(
  db: Db,
  deviceId: string,
  options: DeviceRolloutHistoryOptions = {},
): Promise<DeviceRolloutHistoryItem[]> {
  const rows = await guard(
    db.select({
      device: rolloutDevices,
      rollout: {
        state: rollouts.state,
        action: rollouts.action,
        artifactDigest: rollouts.artifactDigest,
        createdAt: rollouts.createdAt,
        name: rollouts.name,
      },
    })
      .from(rolloutDevices)
      .innerJoin(rollouts, eq(rollouts.id, rolloutDevices.rolloutId))
      .where(and(
        eq(rolloutDevices.deviceId, deviceId),
        options.cursor === undefined ? undefined : sql`(${rollouts.createdAt}, ${rollouts.id}) <
          (select created_at, id from ${rollouts} where id = ${options.cursor}::uuid)`,
      ))
      .orderBy(desc(rollouts.createdAt), desc(rollouts.id))
      .limit(pageLimit(options.limit) + (options.peek ? 1 : 0)),
    "Cannot get device history",
  );
  return rows.map((row) => ({ ...row.device, rollout: row.rollout }));
}

/** The digest each device of a rollback goes back to, in rollout order (null: skipped). */
export async function listRollbackDigests(db: Db, rolloutId: string): Promise<(string | null)[]> {
  const rows = await guard(
    db.select({ digest: rolloutDevices.digest }).from(rolloutDevices)
      .where(eq(rolloutDevices.rolloutId, rolloutId))
      .orderBy(asc(rolloutDevices.position)),
    "Cannot list rollback digests",
  );
  return rows.map((row) => row.digest);
}

/** A rollout's device ids in rollout order, optionally only those in one state. */
export async function listRolloutDeviceIds(
  db: Db,
  rolloutId: string,
  options: { state?: string } = {},
): Promise<string[]> {
  const rows = await guard(
    db.select({ id: rolloutDevices.deviceId }).from(rolloutDevices)
      .where(and(
        eq(rolloutDevices.rolloutId, rolloutId),
        options.state === undefined ? undefined : eq(rolloutDevices.state, options.state),
      ))
      .orderBy(asc(rolloutDevices.position)),
    "Cannot list rollout device ids",
  );
  return rows.map((row) => row.id);
}
