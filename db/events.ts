/** Events: the audit log of every transition and operator action, read back for SSE catch-up. */
import { and, asc, eq, gt, type SQL } from "drizzle-orm";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { pageLimit } from "./page.ts";
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
    const rows = await guard(
      db.insert(events).values(batch.slice(i, i + APPEND_CHUNK)).returning({ id: events.id }),
      "Cannot append events",
    );
    for (const row of rows) ids.push(row.id);
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
