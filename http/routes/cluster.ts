/** GET /v1/cluster: the nodes sharing this database, their heartbeats and the rollouts each owns. */
import { createRoute, z } from "@hono/zod-openapi";
import { AUTH_ERRORS, jsonResponse, newApp } from "../openapi.ts";

/** A node as the route shows it. */
export interface ClusterNodeView {
  id: string;
  startedAt: string;
  heartbeatAt: string;
  /** Active rollouts whose lease it holds. */
  rollouts: number;
}

/** What GET /v1/cluster answers. */
export interface ClusterView {
  /** The node that answered (FLOTILLA_NODE_ID). */
  node: string;
  /** `cluster` on PostgreSQL (leases, fencing, takeover); `single` on embedded PGlite. */
  mode: "cluster" | "single";
  leaseTtlMs: number | null;
  nodes: ClusterNodeView[];
}

const NodeSchema = z.object({
  id: z.string().openapi({ description: "FLOTILLA_NODE_ID" }),
  startedAt: z.string().openapi({ description: "When it last started (the database's clock)" }),
  heartbeatAt: z.string().openapi({ description: "Its last heartbeat (the database's clock)" }),
  rollouts: z.number().int().openapi({ description: "Active rollouts whose lease it holds" }),
});

/** The /v1/cluster sub-app. */
export function clusterApp(view: () => Promise<ClusterView>) {
  return newApp().openapi(
    createRoute({
      method: "get",
      path: "/cluster",
      operationId: "getCluster",
      tags: ["server"],
      summary: "The cluster's nodes: heartbeats and the rollouts each owns",
      description:
        "Every node that heartbeat into this database within the last minute, with the active rollouts whose lease it holds (docs/cluster.md). On embedded PGlite the one node answering.",
      responses: {
        200: jsonResponse(
          z.object({
            node: z.string().openapi({ description: "The node that answered" }),
            mode: z.enum(["cluster", "single"]),
            leaseTtlMs: z.number().int().nullable().openapi({
              description: "FLOTILLA_LEASE_TTL_MS; null in single mode",
            }),
            nodes: z.array(NodeSchema),
          }),
          "The cluster",
        ),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => c.json(await view(), 200),
  );
}
