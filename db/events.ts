/** Events: the audit log of every transition and operator action, read back for SSE catch-up. */
import { and, asc, desc, eq, gt, inArray, lt, type SQL, sql } from "drizzle-orm";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { type Page, pageLimit, rowsOf } from "./page.ts";
import { events } from "./schema.ts";

/** An events row. */
export type Event = typeof events.$inferSelect;

/** An event to append; `at` defaults to the commit time. */
export type NewEvent = Omit<typeof events.$inferInsert, "id">;

/** Options for {@linkcode listEvents}. */
export interface ListEventsOptions {
  /** Only events with a larger id: the last id a client saw. */
  after?: number;
  rolloutId?: string;
  deviceId?: string;
  /** At most this many, 1 to 1000; default 100. */
  limit?: number;
}

// Keeps each statement far below PostgreSQL's 65,535 bind parameters.
const APPEND_CHUNK = 2000;

/** Appends events in order; their ids, which increase in the same order. */
export async function appendEvents(db: Db, batch: readonly NewEvent[]): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < batch.length; i += APPEND_CHUNK) {
    // One JSON parameter for the whole chunk, in order (see upsertRolloutDevices).
    const json = JSON.stringify(
      batch.slice(i, i + APPEND_CHUNK).map((event) => ({
        rolloutId: event.rolloutId ?? null,
        deviceId: event.deviceId ?? null,
        type: event.type,
        actor: event.actor ?? null,
        data: event.data ?? {},
        at: event.at instanceof Date ? event.at.toISOString() : null,
      })),
    );
    const rows = rowsOf<{ id: number | string }>(
      await guard(
        db.execute(sql`
          insert into events (rollout_id, device_id, type, actor, data, at)
          select (e.v->>'rolloutId')::uuid, (e.v->>'deviceId')::uuid, e.v->>'type',
            e.v->>'actor', (e.v->'data')::jsonb, coalesce((e.v->>'at')::timestamptz, now())
          from json_array_elements(${json}::json) with ordinality as e(v, n)
          order by e.n
          returning id`),
        "Cannot append events",
      ),
    );
    // Identity values follow the insertion order, so sorted ids line up with the batch.
    ids.push(...rows.map((row) => Number(row.id)).sort((a, b) => a - b));
  }
  return ids;
}

/** Events in id order, after a given id. */
export async function listEvents(db: Db, options: ListEventsOptions = {}): Promise<Event[]> {
  const filters: SQL[] = [];
  if (options.after !== undefined) filters.push(gt(events.id, options.after));
  if (options.rolloutId !== undefined) filters.push(eq(events.rolloutId, options.rolloutId));
  if (options.deviceId !== undefined) filters.push(eq(events.deviceId, options.deviceId));
  return await guard(
    db.select().from(events)
      .where(and(...filters))
      .orderBy(asc(events.id))
      .limit(pageLimit(options.limit)),
    "Cannot list events",
  );
}

/** Options for {@linkcode listEventHistory}. */
export interface EventHistoryOptions {
  /** Only events with a smaller id: the `nextCursor` of the previous page. */
  before?: number;
  rolloutId?: string;
  deviceId?: string;
  /** Page size, 1 to 1000; default 100. */
  limit?: number;
}

/** Events newest first, a page at a time: the history a console pages back through. */
export async function listEventHistory(
  db: Db,
  options: EventHistoryOptions = {},
): Promise<Page<Event, number>> {
  const limit = pageLimit(options.limit);
  const filters: SQL[] = [];
  if (options.before !== undefined) filters.push(lt(events.id, options.before));
  if (options.rolloutId !== undefined) filters.push(eq(events.rolloutId, options.rolloutId));
  if (options.deviceId !== undefined) filters.push(eq(events.deviceId, options.deviceId));
  const rows = await guard(
    db.select().from(events).where(and(...filters)).orderBy(desc(events.id)).limit(limit + 1),
    "Cannot list events",
  );
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? items.at(-1)!.id : null };
}

/** The events with these ids, in id order (those that exist). */
export async function loadEvents(db: Db, ids: readonly number[]): Promise<Event[]> {
  if (ids.length === 0) return [];
  return await guard(
    db.select().from(events).where(inArray(events.id, [...ids])).orderBy(asc(events.id)),
    "Cannot load events",
  );
}
