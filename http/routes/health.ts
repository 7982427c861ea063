/** /healthz, /readyz and /metrics: what probes and Prometheus read, without a token. */
import { createRoute, z } from "@hono/zod-openapi";
import type { MetricsRegistry } from "../../obs/metrics.ts";
import { jsonResponse, newApp } from "../openapi.ts";

/** Each part the service needs, "ok" or why it is not up, e.g. `{ database: "ok", mqtt: "..." }`. */
export type ReadyReport = Record<string, string>;

const ReadinessSchema = z.object({
  status: z.enum(["ready", "starting", "unavailable"]),
  checks: z.record(z.string(), z.string()).openapi({
    description: 'Each part the service needs ("database", "mqtt", "recovery"): "ok" or why not',
    example: { database: "ok", mqtt: "ok", recovery: "ok" },
  }),
}).openapi("Readiness");

function readiness(report: ReadyReport, starting: boolean) {
  const ready = Object.values(report).every((state) => state === "ok");
  const status = ready ? "ready" as const : starting ? "starting" as const : "unavailable" as const;
  return { body: { status, checks: report }, status: ready ? 200 as const : 503 as const };
}

/** The /readyz answer: 200 when every part is "ok", else 503 naming the parts that are not. */
export function readyResponse(report: ReadyReport, starting = false): Response {
  const { body, status } = readiness(report, starting);
  return Response.json(body, { status });
}

/** The probes' sub-app. */
export function healthApp(deps: {
  metrics: MetricsRegistry;
  ready(): ReadyReport | Promise<ReadyReport>;
}) {
  return newApp()
    .openapi(
      createRoute({
        method: "get",
        path: "/healthz",
        operationId: "getHealth",
        tags: ["operations"],
        summary: "Liveness",
        description: "Answers 200 while the process lives, also while it starts.",
        security: [],
        responses: {
          200: jsonResponse(z.object({ status: z.literal("ok") }), "The process is alive"),
        },
      }),
      (c) => c.json({ status: "ok" as const }, 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/readyz",
        operationId: "getReadiness",
        tags: ["operations"],
        summary: "Readiness",
        description:
          "200 once the database, the MQTT broker and the recovery of running rollouts are all up; 503 naming the parts that are not.",
        security: [],
        responses: {
          200: jsonResponse(ReadinessSchema, "Ready"),
          503: jsonResponse(ReadinessSchema, "Not ready: `checks` says why"),
        },
      }),
      async (c) => {
        const { body, status } = readiness(await deps.ready(), false);
        return status === 200 ? c.json(body, 200) : c.json(body, 503);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/metrics",
        operationId: "getMetrics",
        tags: ["operations"],
        summary: "Prometheus metrics",
        description: "The Prometheus text exposition format, version 0.0.4.",
        security: [],
        responses: {
          200: {
            description: "The metrics",
            content: { "text/plain": { schema: z.string() } },
          },
        },
      }),
      async (c) => {
        return c.text(await deps.metrics.render(), 200, {
          "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
        });
      },
    );
}
