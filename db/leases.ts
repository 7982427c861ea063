/**
 * Cluster leases: which node drives which rollout, and the nodes' heartbeats. Every expiry is
 * decided by the database's clock (`now()`), never a node's: nodes' clocks may disagree.
 */
import { and, asc, eq, sql } from "drizzle-orm";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { rowsOf } from "./page.ts";
import { ACTIVE_ROLLOUT_STATES, nodes, rollouts } from "./schema.ts";
import type { Rollout } from "./rollouts.ts";

/** The fence a state write is conditional on: the node and the epoch of its claim. */
export interface Fence {
  node: string;
  epoch: number;
}

/** A lease a node holds on a rollout. */
export interface HeldLease {
  id: string;
  epoch: number;
}

/** A node as `GET /v1/cluster` lists it. */
export interface ClusterNode {
  id: string;
  startedAt: Date;
  heartbeatAt: Date;
  /** Active rollouts whose lease it holds (expired ones included until someone claims them). */
  rollouts: number;
}

/** Options for {@linkcode claimRollout} and {@linkcode listClaimable}. */
export interface ClaimOptions {
  node: string;
  ttlMs: number;
  /** Also take leases this node id holds (a restart of the node): at start-up only. */
  reclaimOwn?: boolean;
}

const active = () => sql.join(ACTIVE_ROLLOUT_STATES.map((s) => sql`${s}`), sql`, `);

function ttl(ms: number) {
  return sql`now() + ${Math.round(ms)} * interval '1 millisecond'`;
}

function claimable(options: ClaimOptions) {
  return sql`(${rollouts.owner} is null or ${rollouts.leaseExpiresAt} is null
    or ${rollouts.leaseExpiresAt} < now()${
    options.reclaimOwn ? sql` or ${rollouts.owner} = ${options.node}` : sql``
  })`;
}

/**
 * Claims an active rollout whose lease expired or that no node holds: the row with its new epoch
 * (one above the last), or undefined when another node holds a live lease or it is not active.
 */
export async function claimRollout(
  db: Db,
  id: string,
  options: ClaimOptions,
): Promise<Rollout | undefined> {
  const [row] = await guard(
    db.update(rollouts)
      .set({
        owner: options.node,
        leaseEpoch: sql`${rollouts.leaseEpoch} + 1`,
        leaseExpiresAt: ttl(options.ttlMs),
      })
      // A row another node has locked (a transaction of a node frozen mid-commit) is skipped, not
      // waited for: its session's idle_in_transaction_session_timeout ends the lock, and a later
      // scan claims it then.
      .where(
        sql`${rollouts.id} in (select id from ${rollouts} where ${
          and(eq(rollouts.id, id), sql`${rollouts.state} in (${active()})`, claimable(options))
        } for update skip locked)`,
      )
      .returning(),
    "Cannot claim rollout",
  );
  return row;
}

/** A rollout a node may claim now, and the node that held it (null: released or never held). */
export interface Claimable {
  id: string;
  owner: string | null;
}

/** Active rollouts this node may claim now, oldest first, at most `limit`. */
export async function listClaimable(
  db: Db,
  options: ClaimOptions & { limit?: number },
): Promise<Claimable[]> {
  const rows = await guard(
    db.select({ id: rollouts.id, owner: rollouts.owner }).from(rollouts)
      .where(and(sql`${rollouts.state} in (${active()})`, claimable(options)))
      .orderBy(asc(rollouts.createdAt), asc(rollouts.id))
      .limit(options.limit ?? 100),
    "Cannot list claimable rollouts",
  );
  return rows;
}

/** The application_name a node's connections carry, so others can find them (see below). */
export function nodeApplicationName(node: string): string {
  return `flotilla-${node}`;
}

/**
 * Ends the sessions of `node` whose transaction has been open longer than `ms`: a node frozen
 * mid-commit (its lease already expired) keeps its row locks, even while PostgreSQL waits for it
 * to read or write, where idle_in_transaction_session_timeout does not apply. How many ended.
 */
export async function endStuckSessions(db: Db, node: string, ms: number): Promise<number> {
  const rows = rowsOf<{ n: number }>(
    await guard(
      db.execute<{ n: number }>(sql`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid()
          and application_name = ${nodeApplicationName(node)}
          and xact_start < now() - ${Math.round(ms)} * interval '1 millisecond'`),
      "Cannot end stuck sessions",
    ),
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Extends the leases `node` still holds at their epoch by `ttlMs` from the database's now; the ids
 * renewed. A lease missing from the answer was taken over (or its rollout deleted): it is lost.
 */
export async function renewLeases(
  db: Db,
  node: string,
  leases: readonly HeldLease[],
  ttlMs: number,
): Promise<Set<string>> {
  if (leases.length === 0) return new Set();
  const pairs = JSON.stringify(leases.map((lease) => [lease.id, lease.epoch]));
  const rows = await guard(
    db.execute<{ id: string }>(sql`
      update ${rollouts} r set lease_expires_at = ${ttl(ttlMs)}
      from json_array_elements(${pairs}::json) as t(pair)
      where r.id = (t.pair->>0)::uuid and r.lease_epoch = (t.pair->>1)::bigint
        and r.owner = ${node}
      returning r.id`),
    "Cannot renew leases",
  );
  return new Set(rowsOf<{ id: string }>(rows).map((row) => row.id));
}

/** Gives up every lease `node` holds, at once (graceful shutdown); how many. */
export async function releaseLeases(db: Db, node: string): Promise<number> {
  const rows = await guard(
    db.update(rollouts).set({ owner: null, leaseExpiresAt: null })
      .where(eq(rollouts.owner, node)).returning({ id: rollouts.id }),
    "Cannot release leases",
  );
  return rows.length;
}

/**
 * The fence of a state write: locks the rollout's row if `fence` still owns it at its epoch, so no
 * claim commits between this check and the write's commit. False: ownership is lost.
 */
export async function holdsFence(tx: Db, rolloutId: string, fence: Fence): Promise<boolean> {
  const rows = await tx.update(rollouts)
    .set({ leaseEpoch: sql`${rollouts.leaseEpoch}` })
    .where(and(
      eq(rollouts.id, rolloutId),
      eq(rollouts.owner, fence.node),
      eq(rollouts.leaseEpoch, fence.epoch),
    ))
    .returning({ id: rollouts.id });
  return rows.length > 0;
}

/** Records this node's heartbeat (and, with `started`, its start) by the database's clock. */
export async function heartbeat(db: Db, node: string, started = false): Promise<void> {
  await guard(
    db.insert(nodes).values({ id: node })
      .onConflictDoUpdate({
        target: nodes.id,
        set: started
          ? { startedAt: sql`now()`, heartbeatAt: sql`now()` }
          : { heartbeatAt: sql`now()` },
      }),
    "Cannot record heartbeat",
  );
}

/** Nodes that heartbeat within `withinMs` (all when undefined), with the rollouts each owns. */
export async function listNodes(db: Db, withinMs?: number): Promise<ClusterNode[]> {
  const rows = await guard(
    db.select({
      id: nodes.id,
      startedAt: nodes.startedAt,
      heartbeatAt: nodes.heartbeatAt,
      rollouts: sql<number>`(select count(*)::int from ${rollouts} r
        where r.owner = ${sql.raw('"nodes"."id"')} and r.state in (${active()}))`,
    }).from(nodes)
      .where(
        withinMs === undefined
          ? undefined
          : sql`${nodes.heartbeatAt} > now() - ${Math.round(withinMs)} * interval '1 millisecond'`,
      )
      .orderBy(asc(nodes.id)),
    "Cannot list nodes",
  );
  return rows.map((row) => ({ ...row, rollouts: Number(row.rollouts) }));
}
