/** GET /v1/events: Server-Sent Events of rollout and device transitions, with catch-up. */
import { z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { type Db, type Event, listEvents } from "../../db/mod.ts";
import { ApiError } from "../errors.ts";
import type { EventHub, StreamedEvent } from "../../obs/event_hub.ts";
import { MAX_SAFE, queryInt } from "../fields.ts";
import { AUTH_ERRORS, invalidRequest, newApp } from "../openapi.ts";

// Comment lines keep idle connections open through proxies.
const KEEPALIVE_MS = 15_000;
const CATCH_UP_PAGE = 1000;

/** A database event as streamed. */
export function streamedEvent(event: Event): StreamedEvent {
  return {
    id: event.id,
    type: event.type,
    rolloutId: event.rolloutId,
    deviceId: event.deviceId,
    at: event.at.toISOString(),
    data: { ...event.data, ...(event.actor ? { actor: event.actor } : {}) },
  };
}

const Query = z.object({
  rollout: z.uuid().optional().openapi({ description: "Only this rollout's events" }),
  device: z.uuid().optional().openapi({ description: "Only this device's events" }),
  after: queryInt("after", 0, MAX_SAFE).optional().openapi({
    description: "Replay the events after this id first; 0 replays them all",
  }),
}).strict();

const Headers = z.object({
  "last-event-id": z.string().regex(/^\d{1,15}$/).optional().openapi({
    description: "The id of the last event received, to resume after a reconnect (as ?after=)",
  }),
});

/** The events sub-app. */
export function eventsApp(db: Db, hub: EventHub) {
  const app = newApp();
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/",
    operationId: "streamEvents",
    tags: ["events"],
    summary: "Server-Sent Events of every transition",
    description:
      "Each message has the event's id, its type as the SSE event name, and the event as JSON data. Reconnect with Last-Event-ID (or ?after=) to resume without a gap.",
    request: { query: Query, headers: Headers },
    responses: {
      200: {
        description:
          "An endless stream: `id` is the event's id, `event` its type, `data` the event as JSON",
        content: { "text/event-stream": { schema: z.string() } },
      },
      ...AUTH_ERRORS,
    },
  });
  return app.get("/", (c) => {
    const parsed = Query.safeParse(c.req.query());
    if (!parsed.success) throw invalidRequest("query", parsed.error);
    const { rollout, device } = parsed.data;
    const lastEventId = c.req.header("last-event-id");
    let after = parsed.data.after;
    if (lastEventId !== undefined) {
      if (!/^\d{1,15}$/.test(lastEventId)) {
        throw new ApiError(400, "invalid_request", `Invalid Last-Event-ID "${lastEventId}"`);
      }
      after = Number(lastEventId);
    }
    const filter = (event: StreamedEvent) =>
      (rollout === undefined || event.rolloutId === rollout) &&
      (device === undefined || event.deviceId === device);
    // Subscribe before catching up so nothing committed in between is missed; duplicates are
    // skipped by id.
    const live = hub.subscribe(filter);
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => live.close("client went away"));
      const keepalive = setInterval(() => {
        stream.write(": keepalive\n\n").catch(() => live.close("write failed"));
      }, KEEPALIVE_MS);
      let last = after ?? Number.MAX_SAFE_INTEGER;
      try {
        if (after !== undefined) {
          while (true) {
            const page = await listEvents(db, {
              after: last,
              rolloutId: rollout,
              deviceId: device,
              limit: CATCH_UP_PAGE,
            });
            for (const event of page) {
              await stream.writeSSE({
                id: String(event.id),
                event: event.type,
                data: JSON.stringify(streamedEvent(event)),
              });
              last = event.id;
            }
            if (page.length < CATCH_UP_PAGE) break;
          }
        }
        for await (const event of live) {
          if (after !== undefined && event.id <= last) continue;
          await stream.writeSSE({
            id: String(event.id),
            event: event.type,
            data: JSON.stringify(event),
          });
        }
        if (live.closedReason && live.closedReason !== "client went away") {
          await stream.writeSSE({
            event: "stream.closed",
            data: JSON.stringify({ reason: live.closedReason }),
          });
        }
      } finally {
        clearInterval(keepalive);
        live.close();
      }
    });
  });
}
