/** Histories the console pages back through: a device's rollouts, and the events of a device or rollout. */
import { createRoute, z } from "@hono/zod-openapi";
import {
  type Db,
  deviceRolloutHistory,
  type Event,
  getDevice,
  getRollout,
  listEventHistory,
} from "../../db/mod.ts";
import { ApiError } from "../errors.ts";
import { MAX_SAFE, queryInt } from "../fields.ts";
import {
  AUTH_ERRORS,
  IdParam,
  jsonResponse,
  Limit,
  newApp,
  NOT_FOUND,
  UuidCursor,
} from "../openapi.ts";
import { historyJson, HistorySchema } from "./devices.ts";

const EventSchema = z.object({
  id: z.number(),
  type: z.string(),
  rolloutId: z.string().nullable(),
  deviceId: z.string().nullable(),
  /** The API token's name for an operator action, null for the engine. */
  actor: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  at: z.string(),
}).openapi("LoggedEvent");

const EventPage = z.object({ items: z.array(EventSchema), nextCursor: z.number().nullable() });

const EventQuery = z.object({
  before: queryInt("before", 1, MAX_SAFE).optional().openapi({
    description: "The nextCursor of the previous page: only events with a smaller id",
  }),
  limit: Limit,
}).strict();

function eventJson(event: Event) {
  return {
    id: event.id,
    type: event.type,
    rolloutId: event.rolloutId,
    deviceId: event.deviceId,
    actor: event.actor,
    data: event.data,
    at: event.at.toISOString(),
  };
}

async function requireDevice(db: Db, id: string): Promise<void> {
  if (!await getDevice(db, id)) throw new ApiError(404, "not_found", `No device "${id}"`);
}

/** History routes under /v1: `/devices/{id}/rollouts`, `/devices/{id}/events`, `/rollouts/{id}/events`. */
export function historyApp(db: Db) {
  return newApp()
    .openapi(
      createRoute({
        method: "get",
        path: "/devices/{id}/rollouts",
        operationId: "listDeviceRollouts",
        tags: ["devices"],
        summary: "Every rollout a device was in, newest first, a page at a time",
        description: "The device's part in each rollout: its state, attempts and last status.",
        request: {
          params: IdParam,
          query: z.object({ cursor: UuidCursor, limit: Limit }).strict(),
        },
        responses: {
          200: jsonResponse(
            z.object({ items: z.array(HistorySchema), nextCursor: z.string().nullable() }),
            "A page of the device's rollouts",
          ),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        const { cursor, limit = 100 } = c.req.valid("query");
        await requireDevice(db, id);
        const rows = await deviceRolloutHistory(db, id, { cursor, limit, peek: true });
        const items = rows.slice(0, limit).map(historyJson);
        return c.json({
          items,
          nextCursor: rows.length > limit ? items.at(-1)!.rolloutId : null,
        }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/devices/{id}/events",
        operationId: "listDeviceEvents",
        tags: ["events"],
        summary: "A device's events, newest first, a page at a time",
        description: "What happened to the device, in every rollout, with who did it.",
        request: { params: IdParam, query: EventQuery },
        responses: {
          200: jsonResponse(EventPage, "A page of the device's events"),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        await requireDevice(db, id);
        const page = await listEventHistory(db, { ...c.req.valid("query"), deviceId: id });
        return c.json({ items: page.items.map(eventJson), nextCursor: page.nextCursor }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/rollouts/{id}/events",
        operationId: "listRolloutEvents",
        tags: ["events"],
        summary: "A rollout's events, newest first, a page at a time",
        description: "What happened in the rollout and to its devices, with who did it.",
        request: { params: IdParam, query: EventQuery },
        responses: {
          200: jsonResponse(EventPage, "A page of the rollout's events"),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        if (!await getRollout(db, id)) throw new ApiError(404, "not_found", `No rollout "${id}"`);
        const page = await listEventHistory(db, { ...c.req.valid("query"), rolloutId: id });
        return c.json({ items: page.items.map(eventJson), nextCursor: page.nextCursor }, 200);
      },
    );
}
