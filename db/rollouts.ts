/** Rollouts: creation with their device rows in one transaction, lookup, listing, updates. */
import { and, asc, count, desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { Db } from "./open.ts";
import { ConflictError, guard, InvalidDataError } from "./errors.ts";
import { uuidv7 } from "./ids.ts";
import { type Page, pageLimit, rowsOf } from "./page.ts";
import type { NewArtifact } from "./artifacts.ts";
import {
  ACTIVE_ROLLOUT_STATES,
  artifacts,
  devices,
  PENDING,
  rolloutDevices,
  rollouts,
  type RolloutState,
  SKIPPED,
} from "./schema.ts";
import type { RolloutAction } from "../actors/states.ts";

/** A rollout row. */
export type Rollout = typeof rollouts.$inferSelect;

/** What creating a rollout takes. */
export interface NewRollout {
  /** Default: a new UUIDv7. */
  id?: string;
  name?: string | null;
  description?: string | null;
  /** The API token's name that asked for it. */
  createdBy?: string | null;
  /** Default `update`; a `rollback` has no artifact (both null). */
  action?: RolloutAction;
  /** The rollout a rollback undoes. */
  rollbackOf?: string | null;
  /** [SRUP-10] For `rotate-key`: the fingerprint of the key devices are moved to. */
  serverKey?: string | null;
  artifactDigest: string | null;
  artifactUrl: string | null;
  policy: Record<string, unknown>;
  policyName: string;
  policySha256: string;
  policyCommit?: string | null;
  /** The selector as the operator wrote it. */
  targets: Record<string, unknown>;
  /** The devices in rollout order, each once; every one must be registered. */
  deviceIds: readonly string[];
  state?: RolloutState;
  /** When a `scheduled` rollout starts by itself. */
  startAt?: Date | null;
  snapshot?: unknown;
  /** An artifact to record in the same transaction, so a refused rollout leaves none behind. */
  registerArtifact?: NewArtifact;
  /** Cluster mode: the node that creates it holds its first lease (epoch 1) for `ttlMs`. */
  lease?: { node: string; ttlMs: number };
}

/** Fields of a rollout the engine and operators change. */
export type RolloutPatch = Partial<
  Pick<Rollout, "state" | "stage" | "haltReason" | "haltDevice" | "snapshot">
>;

/** Options for {@linkcode listRollouts}. */
export interface ListRolloutsOptions {
  state?: RolloutState;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
  /** Page size, 1 to 1000; default 100. */
  limit?: number;
}

// Any constant: the key of the advisory lock that serializes rollout creation.
const CREATE_LOCK = 0x666c6f74;

// Targets from which creating a rollout refreshes rollout_devices' statistics (~0.4 s at 100k).
const ANALYZE_AFTER = 1000;

/**
 * Creates a rollout and one rollout_devices row per device (`pending`, or `skipped` for a device
 * whose current digest is already the artifact's; in a rollback, `pending` with the device's
 * previous digest to go back to, or `skipped` when none is recorded; in a key rotation, `skipped`
 * for a device that already trusts the key or is registered with frame version 1), and records
 * `registerArtifact` if given, in one transaction: on any error nothing is written. An InvalidDataError names a device listed twice or not registered; a
 * ConflictError one that an active rollout already drives.
 */
export async function createRollout(db: Db, rollout: NewRollout): Promise<Rollout> {
  const context = "Cannot create rollout";
  const seen = new Set<string>();
  for (const id of rollout.deviceIds) {
    if (seen.has(id)) throw new InvalidDataError(`${context}: device "${id}" is listed twice`);
    seen.add(id);
  }
  const { deviceIds, registerArtifact, lease, ...fields } = rollout;
  const owned = lease
    ? {
      owner: lease.node,
      leaseEpoch: 1,
      leaseExpiresAt: sql`now() + ${Math.round(lease.ttlMs)} * interval '1 millisecond'`,
    }
    : {};
  const id = rollout.id ?? uuidv7();
  // One JSON parameter instead of one per device: 100,000 targets stay a single statement.
  const ids = JSON.stringify(deviceIds);
  return await guard(
    db.transaction(async (tx) => {
      // Creations are serialized, so two at once cannot both take the same idle device.
      await tx.execute(sql`select pg_advisory_xact_lock(${CREATE_LOCK})`);
      const [row] = await tx.insert(rollouts)
        .values({ ...fields, ...owned, id, deviceCount: deviceIds.length })
        .returning();
      const missing = await tx.execute<{ id: string }>(sql`
        select t.id from json_array_elements_text(${ids}::json) as t(id)
        where not exists (select 1 from ${devices} d where d.id = t.id::uuid) limit 5`);
      const unknown = rowsOf<{ id: string }>(missing).map((r) => `"${r.id}"`);
      if (unknown.length > 0) {
        throw new InvalidDataError(`${context}: unknown device ${unknown.join(", ")}`);
      }
      const busy = rowsOf<{ id: string; rollout: string }>(
        await tx.execute<{ id: string; rollout: string }>(sql`
          select rd.device_id as id, rd.rollout_id as rollout
          from json_array_elements_text(${ids}::json) as t(id)
          join ${rolloutDevices} rd on rd.device_id = t.id::uuid
          join ${rollouts} r on r.id = rd.rollout_id
          where r.state in (${sql.join(ACTIVE_ROLLOUT_STATES.map((s) => sql`${s}`), sql`, `)})
          limit 5`),
      );
      if (busy.length > 0) {
        throw new ConflictError(
          `${context}: device ${busy.map((b) => `"${b.id}"`).join(", ")} is in active rollout "${
            busy[0]!.rollout
          }"`,
        );
      }
      if (rollout.action === "rollback") {
        // Each device goes back to the previous digest recorded now; with none, there is no
        // version to go back to, and it is skipped.
        await tx.execute(sql`
          insert into rollout_devices (rollout_id, device_id, position, state, digest)
          select ${id}::uuid, t.id::uuid, t.n - 1,
            case when d.previous_digest is null then ${SKIPPED} else ${PENDING} end,
            d.previous_digest
          from json_array_elements_text(${ids}::json) with ordinality as t(id, n)
          join ${devices} d on d.id = t.id::uuid`);
      } else if (rollout.action === "rotate-key") {
        // [SRUP-10] A device that already trusts the key is skipped: nothing to rotate. So is one
        // registered with frame version 1 (null: 2), which has no KEY_ROTATE: it could never
        // answer, and its time-out would count against the thresholds.
        await tx.execute(sql`
          insert into rollout_devices (rollout_id, device_id, position, state)
          select ${id}::uuid, t.id::uuid, t.n - 1,
            case when d.server_key = ${rollout.serverKey} or coalesce(d.frame_version, 2) < 2
              then ${SKIPPED} else ${PENDING} end
          from json_array_elements_text(${ids}::json) with ordinality as t(id, n)
          join ${devices} d on d.id = t.id::uuid`);
      } else {
        // A device that already runs the artifact is skipped: updating it again would only
        // overwrite its rollback copy with the same bytes.
        await tx.execute(sql`
          insert into rollout_devices (rollout_id, device_id, position, state)
          select ${id}::uuid, t.id::uuid, t.n - 1,
            case when d.current_digest = ${rollout.artifactDigest} then ${SKIPPED} else ${PENDING} end
          from json_array_elements_text(${ids}::json) with ordinality as t(id, n)
          join ${devices} d on d.id = t.id::uuid`);
      }
      // The engine's first writes to these rows come at once; without fresh statistics the
      // planner takes the new rows for a few and scans them all on every write (PGlite runs no
      // autovacuum to catch up; see maintenance.ts).
      if (deviceIds.length >= ANALYZE_AFTER) await tx.execute(sql`analyze ${rolloutDevices}`);
      // The first record of a digest wins, as in putArtifact.
      if (registerArtifact) {
        await tx.insert(artifacts).values(registerArtifact).onConflictDoNothing();
      }
      return row!;
    }),
    context,
  );
}

/** The rollout with this id, or undefined. */
export async function getRollout(db: Db, id: string): Promise<Rollout | undefined> {
  const [row] = await guard(
    db.select().from(rollouts).where(eq(rollouts.id, id)),
    "Cannot get rollout",
  );
  return row;
}

/** Rollouts, newest first. */
export async function listRollouts(
  db: Db,
  options: ListRolloutsOptions = {},
): Promise<Page<Rollout>> {
  const limit = pageLimit(options.limit);
  const filters: SQL[] = [];
  if (options.state !== undefined) filters.push(eq(rollouts.state, options.state));
  if (options.cursor !== undefined) {
    filters.push(sql`(${rollouts.createdAt}, ${rollouts.id}) <
      (select c.created_at, c.id from ${rollouts} c where c.id = ${options.cursor}::uuid)`);
  }
  const rows = await guard(
    db.select().from(rollouts)
      .where(and(...filters))
      .orderBy(desc(rollouts.createdAt), desc(rollouts.id))
      .limit(limit + 1),
    "Cannot list rollouts",
  );
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? items.at(-1)!.id : null };
}

/** Rollouts the engine still drives (running, paused, waiting for approval), oldest first. */
export async function listActiveRollouts(db: Db): Promise<Rollout[]> {
  return await guard(
    db.select().from(rollouts)
      .where(inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES]))
      .orderBy(asc(rollouts.createdAt), asc(rollouts.id)),
    "Cannot list active rollouts",
  );
}

/** Applies `patch` to a rollout; the updated row, or undefined if there is no such rollout. */
export async function updateRollout(
  db: Db,
  id: string,
  patch: RolloutPatch,
): Promise<Rollout | undefined> {
  const [row] = await guard(
    db.update(rollouts)
      .set({ ...patch, updatedAt: sql`now()` })
      .where(eq(rollouts.id, id))
      .returning(),
    "Cannot update rollout",
  );
  return row;
}

/**
 * Halted updates whose policy says `onAbort: rollback` and that no rollback rollout undoes yet:
 * what a process that stopped between a halt and its rollback still owes, oldest first.
 */
export async function listHaltedWithoutRollback(db: Db): Promise<Rollout[]> {
  return await guard(
    db.select().from(rollouts)
      .where(sql`${rollouts.state} = 'halted' and ${rollouts.action} = 'update'
        and ${rollouts.policy} ->> 'onAbort' = 'rollback'
        and not exists (select 1 from ${rollouts} b where b.rollback_of = ${rollouts.id})`)
      .orderBy(asc(rollouts.createdAt), asc(rollouts.id)),
    "Cannot list halted rollouts",
  );
}

/** The rollback rollouts made to undo this one, oldest first. */
export async function listRollbacksOf(db: Db, id: string): Promise<string[]> {
  const rows = await guard(
    db.select({ id: rollouts.id }).from(rollouts).where(eq(rollouts.rollbackOf, id))
      .orderBy(asc(rollouts.createdAt), asc(rollouts.id)),
    "Cannot list rollbacks",
  );
  return rows.map((row) => row.id);
}

/** How many rollouts are in each state. */
export async function countRolloutsByState(db: Db): Promise<Record<string, number>> {
  const rows = await guard(
    db.select({ state: rollouts.state, n: count() }).from(rollouts).groupBy(rollouts.state),
    "Cannot count rollouts",
  );
  return Object.fromEntries(rows.map((row) => [row.state, row.n]));
}

/**
 * Moves a rollout from state `from` to `to`, guarded by what it expects: the updated row, or
 * undefined when it was not in `from` (someone else moved it first) or does not exist.
 */
export async function moveRollout(
  db: Db,
  id: string,
  move: { from: RolloutState; to: RolloutState },
): Promise<Rollout | undefined> {
  const [row] = await guard(
    db.update(rollouts)
      .set({ state: move.to, updatedAt: sql`now()` })
      .where(and(eq(rollouts.id, id), eq(rollouts.state, move.from)))
      .returning(),
    "Cannot update rollout",
  );
  return row;
}

/** A device's place in a rollout it joined. */
export interface JoinedDevice {
  position: number;
  /** It already runs the rollout's artifact: `skipped`, never contacted. */
  skipped: boolean;
}

/**
 * Adds a device at the end of an active rollout (a dynamic rollout's new match): a `pending` row,
 * or `skipped` when it already runs the artifact, and the rollout's counts, in one transaction.
 * Null, and nothing written, when the device is in an active rollout already (this one included)
 * or the rollout is no longer active.
 */
export async function joinRollout(
  db: Db,
  rolloutId: string,
  deviceId: string,
): Promise<JoinedDevice | null> {
  return await guard(
    db.transaction(async (tx) => {
      // Serialized with creations, so a device is never taken by two active rollouts.
      await tx.execute(sql`select pg_advisory_xact_lock(${CREATE_LOCK})`);
      const active = sql.join(ACTIVE_ROLLOUT_STATES.map((s) => sql`${s}`), sql`, `);
      const busy = rowsOf(
        await tx.execute(sql`
          select 1 from ${rolloutDevices} rd join ${rollouts} r on r.id = rd.rollout_id
          where rd.device_id = ${deviceId}::uuid and r.state in (${active}) limit 1`),
      );
      if (busy.length > 0) return null;
      const [device] = await tx.select({ digest: devices.currentDigest }).from(devices)
        .where(eq(devices.id, deviceId));
      if (!device) return null;
      const [rollout] = await tx.update(rollouts)
        .set({
          deviceCount: sql`${rollouts.deviceCount} + 1`,
          joined: sql`${rollouts.joined} + 1`,
          updatedAt: sql`now()`,
        })
        .where(and(eq(rollouts.id, rolloutId), inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])))
        .returning({ position: rollouts.deviceCount, digest: rollouts.artifactDigest });
      if (!rollout) return null;
      const skipped = rollout.digest !== null && device.digest === rollout.digest;
      const position = rollout.position - 1;
      await tx.insert(rolloutDevices).values({
        rolloutId,
        deviceId,
        position,
        state: skipped ? SKIPPED : PENDING,
      });
      return { position, skipped };
    }),
    "Cannot join rollout",
  );
}

/**
 * Undoes {@linkcode joinRollout} for the rollout's last device, when its engine would not take it
 * after all (the rollout finished meanwhile); false if that device is not its last.
 */
export async function leaveRollout(db: Db, rolloutId: string, deviceId: string): Promise<boolean> {
  return await guard(
    db.transaction(async (tx) => {
      const [rollout] = await tx.update(rollouts)
        .set({ deviceCount: sql`${rollouts.deviceCount} - 1`, joined: sql`${rollouts.joined} - 1` })
        .where(and(
          eq(rollouts.id, rolloutId),
          sql`${rollouts.joined} > 0`,
          sql`exists (select 1 from ${rolloutDevices} rd where rd.rollout_id = ${rolloutId}::uuid
            and rd.device_id = ${deviceId}::uuid and rd.position = ${rollouts.deviceCount} - 1)`,
        ))
        .returning({ id: rollouts.id });
      if (!rollout) return false;
      await tx.delete(rolloutDevices).where(
        and(eq(rolloutDevices.rolloutId, rolloutId), eq(rolloutDevices.deviceId, deviceId)),
      );
      return true;
    }),
    "Cannot leave rollout",
  );
}
