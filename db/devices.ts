/** Devices: registration, lookup, listing with tag and state filters, replay protection. */
import { and, asc, desc, eq, gt, gte, inArray, isNull, lt, or, type SQL, sql } from "drizzle-orm";
import type { Db } from "./open.ts";
import { ConflictError, guard } from "./errors.ts";
import { type Page, pageLimit, rowsOf } from "./page.ts";
import { uuidArray } from "./uuid_array.ts";
import { ACTIVE_ROLLOUT_STATES, devices, MAX_U64, rolloutDevices, rollouts } from "./schema.ts";

/** A device row. */
export type Device = typeof devices.$inferSelect;

/** What registering a device takes. */
export interface NewDevice {
  id: string;
  /** Base64 of the 32-byte Ed25519 public key. */
  publicKey: string;
  tags?: Record<string, string>;
  /** Connected now, when the broker can tell (the embedded one); null (unknown) by default. */
  online?: boolean | null;
}

/** A device in a list, with its state in the latest rollout that included it. */
export interface DeviceListItem extends Device {
  /** The latest rollout that included the device and its state there; null if none did. */
  rollout: { id: string; state: string } | null;
}

/** Options for {@linkcode listDevices}. */
export interface ListDevicesOptions {
  /** Only devices carrying every one of these tags. */
  tags?: Record<string, string>;
  /** Only devices whose state in their latest rollout is this. */
  state?: string;
  /** Only devices whose id starts with this (lowercase hex and dashes). */
  idPrefix?: string;
  /** Only devices connected (true) or not known to be connected (false). */
  online?: boolean;
  /** Only devices running the artifact with this digest. */
  digest?: string;
  /** Only devices last heard from at or after this time. */
  seenAfter?: Date;
  /** Only devices last heard from before this time, or never. */
  seenBefore?: Date;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
  /** Page size, 1 to 1000; default 100. */
  limit?: number;
}

/** Registers a device; a ConflictError if the id is taken. */
export async function registerDevice(db: Db, device: NewDevice): Promise<Device> {
  try {
    const [row] = await guard(
      db.insert(devices).values({ ...device, tags: device.tags ?? {} }).returning(),
      "Cannot register device",
    );
    return row!;
  } catch (error) {
    if (error instanceof ConflictError) {
      throw new ConflictError(`Cannot register device: device "${device.id}" already exists`, {
        cause: error,
        constraint: error.constraint,
      });
    }
    throw error;
  }
}

/**
 * Registers many devices in one statement, all or nothing. With `skipExisting`, ids already
 * registered are left as they are and counted; otherwise any of them is a ConflictError.
 */
export async function registerDevices(
  db: Db,
  batch: readonly NewDevice[],
  options: { skipExisting?: boolean } = {},
): Promise<{ created: number; skipped: number }> {
  if (batch.length === 0) return { created: 0, skipped: 0 };
  const json = JSON.stringify(
    batch.map((d) => ({ ...d, tags: d.tags ?? {}, online: d.online ?? null })),
  );
  const conflict = options.skipExisting ? sql`on conflict (id) do nothing` : sql``;
  const rows = rowsOf<{ id: string }>(
    await guard(
      db.execute(sql`
        insert into ${devices} (id, public_key, tags, online, frame_version)
        select v.id, v."publicKey", v.tags, v.online, v."frameVersion"
        from json_to_recordset(${json}::json)
          as v(id uuid, "publicKey" text, tags jsonb, online boolean, "frameVersion" integer)
        ${conflict}
        returning id`),
      "Cannot register devices",
    ),
  );
  return { created: rows.length, skipped: batch.length - rows.length };
}

/** Replaces a device's tags; the updated device, or undefined if there is none. */
export async function setDeviceTags(
  db: Db,
  id: string,
  tags: Record<string, string>,
): Promise<Device | undefined> {
  const [row] = await guard(
    db.update(devices).set({ tags }).where(eq(devices.id, id)).returning(),
    "Cannot set device tags",
  );
  return row;
}

/** The device with this id, or undefined. */
export async function getDevice(db: Db, id: string): Promise<Device | undefined> {
  const [row] = await guard(
    db.select().from(devices).where(eq(devices.id, id)),
    "Cannot get device",
  );
  return row;
}

/**
 * Removes a device; false if there was none. A ConflictError while an active rollout includes it.
 * Its rollout history stays.
 */
export async function deleteDevice(db: Db, id: string): Promise<boolean> {
  return await guard(
    db.transaction(async (tx) => {
      const [row] = await tx.select({ id: devices.id }).from(devices).where(eq(devices.id, id));
      if (!row) return false;
      const [busy] = await tx.select({ id: rollouts.id }).from(rolloutDevices)
        .innerJoin(rollouts, eq(rollouts.id, rolloutDevices.rolloutId))
        .where(
          and(eq(rolloutDevices.deviceId, id), inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])),
        ).limit(1);
      if (busy) {
        throw new ConflictError(
          `Cannot delete device "${id}": it is in active rollout "${busy.id}"`,
        );
      }
      await tx.delete(devices).where(eq(devices.id, id));
      return true;
    }),
    "Cannot delete device",
  );
}

/** Devices in id order, filtered by tags and by state in their latest rollout. */
export async function listDevices(
  db: Db,
  options: ListDevicesOptions = {},
): Promise<Page<DeviceListItem>> {
  const limit = pageLimit(options.limit);
  const latest = db.select({ rolloutId: rolloutDevices.rolloutId, state: rolloutDevices.state })
    .from(rolloutDevices)
    .innerJoin(rollouts, eq(rollouts.id, rolloutDevices.rolloutId))
    .where(eq(rolloutDevices.deviceId, devices.id))
    .orderBy(desc(rollouts.createdAt), desc(rollouts.id))
    .limit(1)
    .as("latest");
  const filters: SQL[] = [];
  if (options.tags && Object.keys(options.tags).length > 0) {
    filters.push(sql`${devices.tags} @> ${JSON.stringify(options.tags)}::jsonb`);
  }
  if (options.state !== undefined) filters.push(eq(latest.state, options.state));
  if (options.idPrefix !== undefined) {
    filters.push(sql`${devices.id}::text like ${`${options.idPrefix.toLowerCase()}%`}`);
  }
  if (options.online === true) filters.push(eq(devices.online, true));
  if (options.online === false) filters.push(sql`${devices.online} is not true`);
  if (options.digest !== undefined) filters.push(eq(devices.currentDigest, options.digest));
  if (options.seenAfter !== undefined) filters.push(gte(devices.lastSeenAt, options.seenAfter));
  if (options.seenBefore !== undefined) {
    filters.push(or(isNull(devices.lastSeenAt), lt(devices.lastSeenAt, options.seenBefore))!);
  }
  if (options.cursor !== undefined) filters.push(gt(devices.id, options.cursor));
  const rows = await guard(
    db.select({ device: devices, rolloutId: latest.rolloutId, state: latest.state })
      .from(devices)
      .leftJoinLateral(latest, sql`true`)
      .where(and(...filters))
      .orderBy(asc(devices.id))
      .limit(limit + 1),
    "Cannot list devices",
  );
  const items = rows.slice(0, limit).map((row) => ({
    ...row.device,
    rollout: row.rolloutId === null || row.state === null
      ? null
      : { id: row.rolloutId, state: row.state },
  }));
  return { items, nextCursor: rows.length > limit ? items.at(-1)!.id : null };
}

// Ids per query: far below PostgreSQL's 65,535 bind parameters.
const ID_CHUNK = 10_000;

/** Runs `query` on `ids` a chunk at a time and puts each row's non-null value in one map. */
async function loadByIds<T>(
  ids: readonly string[],
  query: (chunk: string[]) => Promise<{ id: string; value: T | null }[]>,
): Promise<Map<string, T>> {
  const result = new Map<string, T>();
  for (let i = 0; i < ids.length; i += ID_CHUNK) {
    for (const row of await query(ids.slice(i, i + ID_CHUNK))) {
      if (row.value !== null) result.set(row.id, row.value);
    }
  }
  return result;
}

/** The last accepted sequence id of each of these devices that has one. */
export async function loadSequences(
  db: Db,
  ids: readonly string[],
): Promise<Map<string, bigint>> {
  return await loadByIds(ids, (chunk) =>
    guard(
      db.select({ id: devices.id, value: devices.lastSequence }).from(devices)
        .where(inArray(devices.id, chunk)),
      "Cannot load sequence ids",
    ));
}

/** The public keys (base64) of these devices, for the ones that exist. */
export async function loadPublicKeys(
  db: Db,
  ids: readonly string[],
): Promise<Map<string, string>> {
  return await loadByIds(ids, (chunk) =>
    guard(
      db.select({ id: devices.id, value: devices.publicKey }).from(devices)
        .where(inArray(devices.id, chunk)),
      "Cannot load public keys",
    ));
}

/** [SRUP-10] The fingerprint of the server key each of these devices confirmed, for those that did. */
export async function loadServerKeys(
  db: Db,
  ids: readonly string[],
): Promise<Map<string, string>> {
  return await loadByIds(ids, (chunk) =>
    guard(
      db.select({ id: devices.id, value: devices.serverKey }).from(devices)
        .where(inArray(devices.id, chunk)),
      "Cannot load server keys",
    ));
}

/** [SRUP-10] Registered devices per server key fingerprint (null: none confirmed, the current key). */
export async function countByServerKey(db: Db): Promise<Map<string | null, number>> {
  const rows = await guard(
    db.select({ key: devices.serverKey, n: sql<number>`count(*)::int` }).from(devices)
      .groupBy(devices.serverKey),
    "Cannot count devices by server key",
  );
  return new Map(rows.map((row) => [row.key, Number(row.n)]));
}

/** [SRUP-10] What a key rotation would do with these devices. */
export interface RotationTargets {
  /** Trust the key already: skipped (`key_trusted`). */
  trusted: number;
  /** Registered with frame version 1, which has no KEY_ROTATE: skipped (`frame_version`). */
  frameVersion1: number;
  /** The rest: sent a KEY_ROTATE. */
  rotatable: number;
}

/**
 * [SRUP-10] Counts these devices by what a rotation to the server key `fingerprint` (null: a key
 * no device trusts yet) does with them; the same rules as createRollout's `skipped` rows.
 */
export async function countRotationTargets(
  db: Db,
  ids: readonly string[],
  fingerprint: string | null,
): Promise<RotationTargets> {
  if (ids.length === 0) return { trusted: 0, frameVersion1: 0, rotatable: 0 };
  // With no key yet (null), no device trusts it: a null server_key is the current key.
  const trusts = fingerprint === null
    ? sql`false`
    : sql`${devices.serverKey} is not distinct from ${fingerprint}`;
  const untrusted = sql`not (${trusts})`;
  const version = sql`coalesce(${devices.frameVersion}, 2)`;
  const [row] = await guard(
    db.select({
      trusted: sql<number>`count(*) filter (where ${trusts})::int`,
      frameVersion1: sql<number>`count(*) filter (where ${untrusted} and ${version} < 2)::int`,
      rotatable: sql<number>`count(*) filter (where ${untrusted} and ${version} >= 2)::int`,
    }).from(devices)
      .where(sql`${devices.id} = any(${uuidArray(ids, "Cannot count devices")}::uuid[])`),
    "Cannot count devices",
  );
  return {
    trusted: Number(row?.trusted ?? 0),
    frameVersion1: Number(row?.frameVersion1 ?? 0),
    rotatable: Number(row?.rotatable ?? 0),
  };
}

/** [SRUP-2.1] The frame version registered for each of these devices that has one. */
export async function loadFrameVersions(
  db: Db,
  ids: readonly string[],
): Promise<Map<string, number>> {
  return await loadByIds(ids, (chunk) =>
    guard(
      db.select({ id: devices.id, value: devices.frameVersion }).from(devices)
        .where(inArray(devices.id, chunk)),
      "Cannot load frame versions",
    ));
}

/** The value of tag `key` of these devices, for those that exist and carry it (maintenance windows). */
export async function loadTagValues(
  db: Db,
  ids: readonly string[],
  key: string,
): Promise<Map<string, string>> {
  return await loadByIds(ids, (chunk) =>
    guard(
      db.select({ id: devices.id, value: sql<string | null>`${devices.tags} ->> ${key}` })
        .from(devices)
        .where(inArray(devices.id, chunk)),
      "Cannot load device tags",
    ));
}

/** Ids of registered devices in id order, optionally only those carrying every tag given. */
export async function selectDeviceIds(
  db: Db,
  options: { tags?: Record<string, string> } = {},
): Promise<string[]> {
  const where = options.tags && Object.keys(options.tags).length > 0
    ? sql`${devices.tags} @> ${JSON.stringify(options.tags)}::jsonb`
    : undefined;
  const rows = await guard(
    db.select({ id: devices.id }).from(devices).where(where).orderBy(asc(devices.id)),
    "Cannot select devices",
  );
  return rows.map((row) => row.id);
}

/** What the engine learned about one device; fields left out are not changed. */
export interface DeviceUpdate {
  id: string;
  /** Heard from at this time (last_seen_at never moves back). */
  seenAt?: Date;
  /** An accepted sequence id (the stored one never moves back). */
  sequence?: bigint;
  /**
   * An operator's reset of the floor: the stored id becomes exactly this (null: none), and only
   * sequence ids merged after it in the same batch raise it again.
   */
  resetSequence?: bigint | null;
  /**
   * A confirmed activation of this digest: the old current becomes previous; a repeat of the same
   * digest changes nothing, so a re-sent ACTIVATE's confirmation is idempotent.
   */
  digest?: string;
  /** Connected to (true) or gone from (false) the broker; the latest update wins. */
  online?: boolean;
  /** [SRUP-10] The fingerprint of the server key it confirmed trusting; the latest wins. */
  serverKey?: string;
}

// Keeps the id array and the JSON of one statement small enough to plan and parse quickly.
const UPDATE_CHUNK = 5000;

/**
 * Applies many devices' updates in one statement per chunk; several updates of one device are
 * merged first, so the group-commit writer rewrites each device row once per batch. A sequence id
 * outside u64 is a RangeError and nothing is written.
 */
export async function updateDevices(db: Db, updates: readonly DeviceUpdate[]): Promise<void> {
  const merged = new Map<
    string,
    {
      at?: string;
      seq?: string | null;
      reset?: boolean;
      digest?: string;
      online?: boolean;
      serverKey?: string;
    }
  >();
  for (const update of updates) {
    const entry = merged.get(update.id) ?? {};
    if (update.seenAt !== undefined) {
      const at = update.seenAt.toISOString();
      if (entry.at === undefined || entry.at < at) entry.at = at;
    }
    if (update.resetSequence !== undefined) {
      entry.reset = true;
      entry.seq = update.resetSequence === null ? null : u64(update.resetSequence).toString();
    }
    if (update.sequence !== undefined) {
      // Checked first: a device with no sequence yet must not skip the range check.
      const sequence = u64(update.sequence);
      if (entry.seq == null || BigInt(entry.seq) < sequence) entry.seq = sequence.toString();
    }
    if (update.digest !== undefined) entry.digest = update.digest;
    if (update.online !== undefined) entry.online = update.online;
    if (update.serverKey !== undefined) entry.serverKey = update.serverKey;
    merged.set(update.id, entry);
  }
  const ids = [...merged.keys()];
  for (let i = 0; i < ids.length; i += UPDATE_CHUNK) {
    const chunk = ids.slice(i, i + UPDATE_CHUNK);
    const json = JSON.stringify(Object.fromEntries(chunk.map((id) => [id, merged.get(id)])));
    await guard(
      db.execute(sql`
        update ${devices} d set
          last_seen_at = greatest(d.last_seen_at, (j.v -> d.id::text ->> 'at')::timestamptz),
          online = coalesce((j.v -> d.id::text ->> 'online')::boolean, d.online),
          server_key = coalesce(j.v -> d.id::text ->> 'serverKey', d.server_key),
          last_sequence = case when (j.v -> d.id::text ->> 'reset')::boolean
            then (j.v -> d.id::text ->> 'seq')::numeric
            else greatest(d.last_sequence, (j.v -> d.id::text ->> 'seq')::numeric) end,
          previous_digest = case
            when j.v -> d.id::text ? 'digest'
              and d.current_digest is distinct from j.v -> d.id::text ->> 'digest'
            then d.current_digest else d.previous_digest end,
          current_digest = coalesce(j.v -> d.id::text ->> 'digest', d.current_digest)
        from (select ${json}::jsonb as v) j
        where d.id = any(${uuidArray(chunk, "Cannot update devices")}::uuid[])`),
      "Cannot update devices",
    );
  }
}

function u64(sequence: bigint): bigint {
  if (sequence < 0n || sequence > MAX_U64) {
    throw new RangeError(
      `Cannot update devices: sequence ${sequence} is not an unsigned 64-bit value`,
    );
  }
  return sequence;
}

/**
 * Sets every device's online flag to `online` (false or null), as at start: no connection
 * outlives the process that saw it, and with an external broker presence is not known.
 */
export async function resetPresence(db: Db, online: false | null): Promise<void> {
  await guard(
    db.update(devices).set({ online }).where(sql`${devices.online} is distinct from ${online}`),
    "Cannot reset device presence",
  );
}

/** How many of these devices have a previous digest recorded: what a rollback can send them to. */
export async function countWithPrevious(db: Db, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const [row] = await guard(
    db.select({ n: sql<number>`count(*)::int` }).from(devices)
      .where(
        sql`${devices.id} = any(${
          uuidArray(ids, "Cannot count devices")
        }::uuid[]) and ${devices.previousDigest} is not null`,
      ),
    "Cannot count devices",
  );
  return Number(row?.n ?? 0);
}

/** How many of these device ids are registered. */
export async function countRegistered(db: Db, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const [row] = await guard(
    db.select({ n: sql<number>`count(*)::int` }).from(devices)
      .where(sql`${devices.id} = any(${uuidArray(ids, "Cannot count devices")}::uuid[])`),
    "Cannot count devices",
  );
  return Number(row?.n ?? 0);
}
