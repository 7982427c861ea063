/** The Hono app: health, metrics, OpenAPI, artifact downloads, and the authenticated /v1 API. */
import { z } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { Db, GroupCommitWriter } from "../db/mod.ts";
import type { Orchestrator } from "../orchestrator/orchestrator.ts";
import type { PolicyRegistry } from "../orchestrator/policy_registry.ts";
import type { ArtifactStore } from "./artifact_store.ts";
import { authenticate, TokenVerifier } from "./auth.ts";
import { bodyIdleTimeout } from "./body_timeout.ts";
import { dashboardApp } from "./dashboard/mod.ts";
import { docsPage } from "./docs_page.ts";
import { ApiError, errorResponse, handleError } from "./errors.ts";
import type { EventHub } from "../obs/event_hub.ts";
import type { MetricsRegistry } from "../obs/metrics.ts";
import { methodGuard } from "./methods.ts";
import { jsonResponse, newApp, TAGS, withServiceStatuses } from "./openapi.ts";
import { healthApp, type ReadyReport } from "./routes/health.ts";
import { artifactsApp, downloadsApp, mediaType } from "./routes/artifacts.ts";
import { devicesApp } from "./routes/devices.ts";
import { eventsApp } from "./routes/events.ts";
import { policiesApp } from "./routes/policies.ts";
import { rolloutsApp } from "./routes/rollouts.ts";
import { rolloutPreviewApp } from "./routes/rollout_preview.ts";
import { historyApp } from "./routes/history.ts";
import { meApp } from "./routes/me.ts";
import { clusterApp, type ClusterView } from "./routes/cluster.ts";
import { tokensApp } from "./routes/tokens.ts";
import { serverApp, type ServerDeps } from "./routes/server.ts";
import type { ServerKey } from "../orchestrator/server_key.ts";

export { type ReadyReport, readyResponse } from "./routes/health.ts";
export type { ClusterNodeView, ClusterView } from "./routes/cluster.ts";

/** Everything the app serves from. */
export interface AppDeps {
  db: Db;
  writer: GroupCommitWriter;
  store: ArtifactStore;
  orchestrator: Orchestrator;
  policies: PolicyRegistry;
  hub: EventHub;
  metrics: MetricsRegistry;
  /** What a device needs to be provisioned. */
  server: ServerDeps["server"];
  /** [SRUP-10] The server's next key, made now if there is none; absent, no key rotates. */
  nextKey?: () => Promise<ServerKey>;
  /** Base URL of this API as devices reach it, for artifact URLs. */
  publicUrl: string;
  /** Largest artifact upload; JSON bodies are capped at `maxJsonBytes`. */
  maxArtifactBytes: number;
  maxJsonBytes: number;
  /** A request body that sends nothing for this long is answered 408. */
  uploadIdleTimeoutMs: number;
  /** Whether a device (lower-case id) is connected, when the broker can tell: the embedded one. */
  presence?: (deviceId: string) => boolean;
  /** GET /v1/cluster: the nodes sharing the database (one on PGlite). */
  cluster(): Promise<ClusterView>;
  /** Whether the service is ready (database usable, MQTT connected, rollouts recovered). */
  ready(): ReadyReport | Promise<ReadyReport>;
}

export { PROTOCOL_VERSION } from "./routes/server.ts";

/** Builds the app; `AppType` of the result types `hc` clients. */
export function createApp(deps: AppDeps) {
  const verifier = new TokenVerifier(deps.db);
  const jsonLimit = bodyLimit({
    maxSize: deps.maxJsonBytes,
    onError: (c) =>
      errorResponse(c, 413, {
        code: "payload_too_large",
        message: `Request body exceeds ${deps.maxJsonBytes} bytes`,
        details: null,
      }),
  });

  const v1 = newApp();
  v1.use("*", authenticate(verifier));
  v1.use("*", async function namedQuery(c, next) {
    // Hono drops a query parameter with no name (`?=x`) before validation sees it; no route has
    // one, so it is refused as any parameter the document does not list.
    if ([...new URL(c.req.url).searchParams.keys()].includes("")) {
      throw new ApiError(400, "invalid_request", "Invalid query: a parameter has no name");
    }
    await next();
  });
  v1.use(
    "*",
    bodyIdleTimeout({ ms: deps.uploadIdleTimeoutMs, setting: "FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS" }),
  );
  v1.use("*", async (c, next) => {
    // Artifact uploads stream with their own, larger cap; a registration (JSON) has the JSON cap.
    if (
      c.req.method === "POST" && c.req.path === "/v1/artifacts" &&
      mediaType(c.req.header("content-type")) !== "application/json"
    ) {
      return await next();
    }
    return await jsonLimit(c, next);
  });
  const api = v1
    .route("/server", serverApp(deps))
    .route("/devices", devicesApp(deps.db, deps.orchestrator, deps.presence))
    .route(
      "/artifacts",
      artifactsApp({
        db: deps.db,
        store: deps.store,
        publicUrl: deps.publicUrl,
        maxBytes: deps.maxArtifactBytes,
        releaseKeys: deps.orchestrator.releaseKeys,
      }),
    )
    .route("/rollouts", rolloutPreviewApp(deps))
    .route("/rollouts", rolloutsApp(deps))
    .route("/policies", policiesApp(deps.policies))
    .route("/tokens", tokensApp(deps.db, verifier))
    .route("/events", eventsApp(deps.db, deps.hub))
    .route("/", historyApp(deps.db))
    .route("/", meApp())
    .route("/", clusterApp(deps.cluster));

  const root = newApp();
  const routes = () => app.routes;
  root.use("*", methodGuard(routes));
  root.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
  });
  let document: unknown;
  root.openAPIRegistry.registerPath({
    method: "get",
    path: "/openapi.json",
    operationId: "getOpenApi",
    tags: ["operations"],
    summary: "This document",
    description: "The OpenAPI 3.1 description of this API; /docs shows it.",
    security: [],
    responses: {
      200: jsonResponse(z.record(z.string(), z.unknown()), "The OpenAPI document"),
    },
  });
  const app = root
    .get("/openapi.json", (c) => {
      document ??= withServiceStatuses(root.getOpenAPI31Document({
        openapi: "3.1.0",
        info: {
          title: "flotilla",
          version: "1",
          description: "Staged SRUP update rollouts for IoT fleets",
          contact: { name: "flotilla operators", url: `${deps.publicUrl}/docs` },
        },
        servers: [{ url: deps.publicUrl, description: "This flotilla" }],
        tags: [...TAGS],
        security: [{ bearer: [] }],
      }));
      return c.json(document);
    })
    .route("/", healthApp(deps))
    .get("/docs", (c) => c.html(docsPage("/openapi.json")))
    .route("/", dashboardApp())
    .route("/artifacts", downloadsApp(deps.store))
    .route("/v1", api);
  app.notFound((c) => {
    throw new ApiError(404, "not_found", `No route for ${c.req.method} ${c.req.path}`);
  });
  app.onError(handleError);
  return app;
}

/** The app's type, for `hc<AppType>` clients. */
export type AppType = ReturnType<typeof createApp>;
