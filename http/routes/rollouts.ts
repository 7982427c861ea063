/** /v1/rollouts: create rollouts, read their progress, and the operator commands. */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { RolloutCommandError } from "../../actors/mod.ts";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  type Db,
  getRollout,
  listRolloutDevices,
  listRollouts,
  type Rollout,
  ROLLOUT_STATES,
} from "../../db/mod.ts";
import type { Orchestrator, RolloutCommand } from "../../orchestrator/orchestrator.ts";
import type { PolicyRegistry } from "../../orchestrator/policy_registry.ts";
import {
  type RolloutRefusal,
  RolloutRefusedError,
  startRollout,
} from "../../orchestrator/create_rollout.ts";
import { rolloutView } from "../../orchestrator/rollout_view.ts";
import { requireRole } from "../auth.ts";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "../env.ts";
import { ArtifactUrl, Digest, prose } from "./artifacts.ts";
import {
  AUTH_ERRORS,
  CONFLICT,
  IdParam,
  jsonBody,
  jsonResponse,
  newApp,
  NOT_FOUND,
  PageQuery,
} from "../openapi.ts";

/** What the rollout routes need. */
export interface RolloutDeps {
  db: Db;
  orchestrator: Orchestrator;
  policies: PolicyRegistry;
  publicUrl: string;
}

const MAX_TARGET_IDS = 1_000_000;

/** A new rollout; the preview route reads its policy and targets. */
export const CreateSchema = z.object({
  artifact: z.union([
    z.object({ digest: Digest }).strict(),
    z.object({
      url: ArtifactUrl,
      digest: Digest,
    }).strict(),
  ]),
  policy: z.union([z.string().min(1).max(128), z.record(z.string(), z.unknown())]).openapi({
    description: "A loaded policy's name, or an inline policy object",
  }),
  targets: z.union([
    z.object({ all: z.literal(true) }).strict(),
    z.object({ ids: z.array(z.uuid()).min(1).max(MAX_TARGET_IDS) }).strict(),
    z.object({ tags: z.record(z.string(), z.string()) }).strict(),
  ]),
  name: z.string().min(1).max(128).regex(
    /^[^\p{Cc}]*$/u,
    "name must not contain control characters",
  )
    .optional(),
  description: prose("description", 2000).optional(),
}).strict().openapi("NewRollout");

const StageSchema = z.object({
  percent: z.number(),
  devices: z.number(),
  pending: z.number(),
  inFlight: z.number(),
  received: z.number(),
  activated: z.number(),
  failed: z.number(),
  cancelled: z.number(),
});

const RolloutSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  description: z.string().nullable(),
  /** The API token's name that created it; null for rollouts made before it was recorded. */
  createdBy: z.string().nullable(),
  state: z.enum(ROLLOUT_STATES),
  stage: z.number(),
  stages: z.array(StageSchema).nullable(),
  counts: z.record(z.string(), z.number()),
  devices: z.number(),
  haltReason: z.object({ message: z.string() }).catchall(z.unknown()).nullable(),
  pauseReason: z.object({ kind: z.string() }).catchall(z.unknown()).nullable(),
  bakeUntil: z.string().nullable(),
  policy: z.object({ name: z.string(), sha256: z.string(), commit: z.string().nullable() }),
  artifact: z.object({
    digest: z.string(),
    url: z.string(),
    name: z.string().nullable(),
    version: z.string().nullable(),
  }),
  createdAt: z.string(),
  updatedAt: z.string(),
}).openapi("Rollout");

const RolloutDeviceSchema = z.object({
  deviceId: z.string(),
  position: z.number(),
  state: z.string(),
  token: z.string().nullable(),
  attempt: z.number(),
  lastStatus: z.number().nullable(),
  updatedAt: z.string(),
}).openapi("RolloutDevice");

const COMMAND_RESPONSES = {
  200: jsonResponse(RolloutSchema, "The rollout after the command"),
  ...AUTH_ERRORS,
  ...NOT_FOUND,
  ...CONFLICT,
};

const COMMAND_SUMMARIES: Record<RolloutCommand, string> = {
  pause: "Pause a rollout: no new INITIATE or ACTIVATE until resumed",
  resume: "Resume a paused rollout",
  cancel: "Cancel a rollout: devices keep what they run",
  promote: "Grant the manual approval the rollout waits for",
};

/** The route of one operator command, `POST /{id}/<command>`. */
function commandRoute<C extends RolloutCommand>(command: C) {
  return createRoute({
    method: "post",
    path: `/{id}/${command}` as `/{id}/${C}`,
    summary: COMMAND_SUMMARIES[command],
    middleware: [requireRole("operator")] as const,
    request: { params: IdParam },
    responses: COMMAND_RESPONSES,
  });
}

const REFUSAL_STATUS: Record<RolloutRefusal, ContentfulStatusCode> = {
  unknown_policy: 422,
  invalid_policy: 400,
  unknown_artifact: 422,
  no_devices: 422,
  invalid_targets: 422,
  devices_busy: 409,
  insufficient_memory: 503,
};

/** The stored rollout, or a 404. */
async function findRollout(db: Db, id: string): Promise<Rollout> {
  const row = await getRollout(db, id);
  if (!row) throw new ApiError(404, "not_found", `No rollout "${id}"`);
  return row;
}

/** The rollouts sub-app. */
export function rolloutsApp(deps: RolloutDeps) {
  const { db, orchestrator } = deps;
  const view = async (id: string) => rolloutView(db, orchestrator, await findRollout(db, id));
  const runCommand = async (c: Context<AppEnv>, command: RolloutCommand) => {
    const id = c.req.param("id")!;
    const row = await findRollout(db, id);
    try {
      if (!await orchestrator.command(id, command, c.get("caller").name)) {
        throw new ApiError(409, "not_running", `Cannot ${command} rollout: it is "${row.state}"`);
      }
    } catch (error) {
      if (error instanceof RolloutCommandError) {
        throw new ApiError(409, error.code, error.message, { details: { state: error.state } });
      }
      throw error;
    }
    return c.json(await view(id), 200);
  };
  return newApp()
    .openapi(
      createRoute({
        method: "post",
        path: "/",
        summary: "Create and start a rollout",
        middleware: [requireRole("operator")] as const,
        request: { body: jsonBody(CreateSchema) },
        responses: {
          201: jsonResponse(RolloutSchema, "The rollout"),
          ...AUTH_ERRORS,
          ...CONFLICT,
          422: jsonResponse(
            z.object({ error: z.unknown() }),
            "Unknown artifact or policy, or no devices",
          ),
          503: jsonResponse(
            z.object({ error: z.unknown() }),
            "The orchestrator's heap has no room for this many devices",
          ),
        },
      }),
      async (c) => {
        try {
          const row = await startRollout(deps, {
            ...c.req.valid("json"),
            actor: c.get("caller").name,
          });
          return c.json(await rolloutView(db, orchestrator, row), 201);
        } catch (error) {
          if (!(error instanceof RolloutRefusedError)) throw error;
          throw new ApiError(REFUSAL_STATUS[error.code], error.code, error.message, {
            details: error.details,
          });
        }
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/",
        summary: "List rollouts, newest first",
        request: { query: z.object({ state: z.enum(ROLLOUT_STATES).optional(), ...PageQuery }) },
        responses: {
          200: jsonResponse(
            z.object({ items: z.array(RolloutSchema), nextCursor: z.string().nullable() }),
            "A page of rollouts",
          ),
          ...AUTH_ERRORS,
        },
      }),
      async (c) => {
        const query = c.req.valid("query");
        if (query.cursor !== undefined && !z.uuid().safeParse(query.cursor).success) {
          throw new ApiError(400, "invalid_request", `Invalid cursor "${query.cursor}"`);
        }
        const page = await listRollouts(db, query);
        const items = await Promise.all(
          page.items.map((row) => rolloutView(db, orchestrator, row)),
        );
        return c.json({ items, nextCursor: page.nextCursor }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/{id}",
        summary: "A rollout: state, stage, counts, halt reason, policy hash and commit",
        request: { params: IdParam },
        responses: {
          200: jsonResponse(RolloutSchema, "The rollout"),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
        },
      }),
      async (c) => c.json(await view(c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/{id}/devices",
        summary: "A rollout's devices in rollout order",
        request: {
          params: IdParam,
          query: z.object({
            state: z.string().max(32).optional(),
            cursor: z.coerce.number().int().nonnegative().optional(),
            limit: PageQuery.limit,
          }),
        },
        responses: {
          200: jsonResponse(
            z.object({ items: z.array(RolloutDeviceSchema), nextCursor: z.number().nullable() }),
            "A page of the rollout's devices",
          ),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        await findRollout(db, id);
        const page = await listRolloutDevices(db, id, c.req.valid("query"));
        return c.json({
          items: page.items.map((d) => ({
            deviceId: d.deviceId,
            position: d.position,
            state: d.state,
            token: d.token,
            attempt: d.attempt,
            lastStatus: d.lastStatus,
            updatedAt: d.updatedAt.toISOString(),
          })),
          nextCursor: page.nextCursor,
        }, 200);
      },
    )
    .openapi(commandRoute("pause"), (c) => runCommand(c, "pause"))
    .openapi(commandRoute("resume"), (c) => runCommand(c, "resume"))
    .openapi(commandRoute("cancel"), (c) => runCommand(c, "cancel"))
    .openapi(commandRoute("promote"), (c) => runCommand(c, "promote"));
}
