/** /v1/rollouts: create rollouts, read their progress, and the operator commands. */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  DEVICE_STATES,
  type DeviceState,
  ROLLOUT_ACTIONS,
  RolloutCommandError,
  WAIT_REASONS,
} from "../../actors/mod.ts";
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
import { OwnerUnavailableError } from "../../orchestrator/cluster.ts";
import {
  type RolloutRefusal,
  RolloutRefusedError,
  startRollout,
} from "../../orchestrator/create_rollout.ts";
import { rolloutView } from "../../orchestrator/rollout_view.ts";
import { requireRole } from "../auth.ts";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "../env.ts";
import { ArtifactUrl } from "./artifacts.ts";
import { Digest, MAX_INT4, plainText, prose, queryInt, StateFilter, Tags } from "../fields.ts";
import { InlinePolicy } from "./policies.ts";
import {
  AUTH_ERRORS,
  CONFLICT,
  errorContent,
  IdParam,
  jsonBody,
  jsonResponse,
  Limit,
  newApp,
  NOT_FOUND,
  UuidCursor,
} from "../openapi.ts";

/** What the rollout routes need. */
export interface RolloutDeps {
  db: Db;
  orchestrator: Orchestrator;
  policies: PolicyRegistry;
  publicUrl: string;
}

const MAX_TARGET_IDS = 1_000_000;
const EXAMPLE_DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/** A loaded policy's name or an inline policy, as every new rollout names it. */
export const PolicyField = z.union([
  z.string().min(1).max(128).openapi({ description: "A loaded policy's name" }),
  InlinePolicy,
]).openapi({ description: "A loaded policy's name, or an inline policy object" });

/** Which devices a new rollout targets. */
export const TargetsField = z.union([
  z.object({ all: z.literal(true) }).strict(),
  z.object({ ids: z.array(z.uuid()).min(1).max(MAX_TARGET_IDS) }).strict(),
  z.object({ tags: Tags }).strict(),
]);

/** What every new rollout names: the policy, the targets, and optional words. */
export const RolloutFields = {
  policy: PolicyField,
  targets: TargetsField,
  name: plainText("name", 128).min(1).optional(),
  description: prose("description", 2000).optional(),
  startAt: z.string().max(64).optional().openapi({
    description:
      "When to start: ISO 8601 with a UTC offset or Z, overriding the policy's startAt. A later time creates the rollout scheduled; nothing is sent until then. A time that is not an ISO 8601 date and time with an offset, or names no real instant, is refused with 422 invalid_start_at, a time already past with 422 start_in_past; each message says which.",
    example: "2026-12-06T02:00:00+01:00",
  }),
};

/** The policy and targets of a rollout, as the preview route reads them. */
export const PreviewRequestSchema = z.object({
  policy: PolicyField,
  targets: TargetsField,
}).strict();

const UpdateSchema = z.object({
  action: z.literal("update", {
    error: 'Must be "update" (the default) for a rollout with an artifact; a "rollback" has none',
  }).optional().openapi({ description: "Install the artifact: the default" }),
  artifact: z.union([
    z.object({ digest: Digest }).strict(),
    z.object({
      url: ArtifactUrl,
      digest: Digest,
    }).strict(),
  ]),
  ...RolloutFields,
}).strict().openapi("NewUpdateRollout", {
  // A rollout that can start wherever a device is registered: the artifact is hosted elsewhere
  // and the policy inline, so neither has to exist first.
  example: {
    artifact: { url: "https://files.example/sensor-2.1.0.bin", digest: EXAMPLE_DIGEST },
    policy: { name: "example", stages: [{ percent: 50 }, { percent: 100 }] },
    targets: { all: true },
    name: "sensor 2.1.0",
  },
});

const RollbackSchema = z.object({
  action: z.literal("rollback").openapi({
    description:
      "Send each targeted device back to its previous version (a SRUP ROLLBACK naming the previous digest the server recorded); devices with none recorded are skipped",
  }),
  ...RolloutFields,
}, {
  error: (issue) =>
    issue.code === "unrecognized_keys" && issue.keys.includes("artifact")
      ? "A rollback takes no artifact: each device goes back to its own previous version"
      : undefined,
}).strict().openapi("NewRollbackRollout", {
  example: {
    action: "rollback",
    policy: { name: "example", stages: [{ percent: 50 }, { percent: 100 }] },
    targets: { tags: { site: "lab" } },
    name: "back to sensor 2.0",
  },
});

/** A new rollout: an update (an artifact), or a rollback (none). */
export const CreateSchema = z.union([UpdateSchema, RollbackSchema]).openapi("NewRollout");

const StageSchema = z.object({
  percent: z.number(),
  devices: z.number(),
  pending: z.number(),
  inFlight: z.number(),
  received: z.number(),
  activated: z.number(),
  failed: z.number(),
  cancelled: z.number(),
  skipped: z.number(),
});

/** A rollout as the API shows it. */
export const RolloutSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  description: z.string().nullable(),
  /** The API token's name that created it; null for rollouts made before it was recorded. */
  createdBy: z.string().nullable(),
  owner: z.string().nullable().openapi({
    description:
      "Cluster mode (PostgreSQL): the node whose lease drives it (FLOTILLA_NODE_ID); null when no node holds one, and always on embedded PGlite",
  }),
  state: z.enum(ROLLOUT_STATES),
  stage: z.number(),
  stages: z.array(StageSchema).nullable(),
  counts: z.object(
    Object.fromEntries(DEVICE_STATES.map((state) => [state, z.number().int()])) as Record<
      DeviceState,
      z.ZodNumber
    >,
  ).openapi({ description: "How many of its devices are in each state, every state listed" }),
  devices: z.number(),
  joined: z.number().int().openapi({
    description: "Devices of `devices` that joined after creation: a dynamic rollout's new matches",
  }),
  dynamic: z.boolean().openapi({
    description: "Whether devices that come to match the targets join its last stage",
  }),
  startAt: z.string().nullable().openapi({
    description:
      "When a rollout created scheduled starts (or started) by itself; null for one started at creation",
  }),
  haltReason: z.object({ message: z.string() }).catchall(z.unknown()).nullable(),
  pauseReason: z.object({ kind: z.string() }).catchall(z.unknown()).nullable(),
  bakeUntil: z.string().nullable(),
  windows: z.object({
    by: z.string().nullable().openapi({
      description: "The device tag the windows go by, or null: the same windows for every device",
    }),
    onClose: z.enum(["finish", "hold"]),
    waiting: z.number().int().openapi({
      description: "Devices waiting for their maintenance window (reason waiting_window)",
    }),
    unmatched: z.number().int().openapi({
      description: "Devices whose tag value matches no window: never started",
    }),
    groups: z.array(z.object({
      group: z.string().nullable().openapi({
        description:
          "The tag value; null for the policy's windows.open (every device, or those whose value has no group)",
      }),
      open: z.boolean(),
      nextOpen: z.string().nullable().openapi({
        description: "When it next opens (now when open), ISO 8601; null if it never does",
      }),
      nextClose: z.string().nullable().openapi({
        description: "When the open window closes; null when closed or never closing",
      }),
      waiting: z.number().int(),
    })),
  }).nullable().openapi({
    description:
      "The policy's maintenance windows while this process runs the rollout (null otherwise, or without windows)",
  }),
  policy: z.object({ name: z.string(), sha256: z.string(), commit: z.string().nullable() }),
  action: z.enum(ROLLOUT_ACTIONS).openapi({
    description:
      "update installs the artifact; rollback sends devices back to their previous version; rotate-key has devices trust the server's next key (POST /v1/server/rotate-key)",
  }),
  serverKey: z.string().nullable().openapi({
    description:
      "For rotate-key: the fingerprint of the server key devices are moved to; null otherwise",
  }),
  skippedReasons: z.object({ key_trusted: z.number().int(), frame_version: z.number().int() })
    .nullable().openapi({
      description:
        "For rotate-key: the devices skipped at creation, by reason: key_trusted (they trust the key already) or frame_version (registered with frame version 1, which has no KEY_ROTATE); null otherwise",
    }),
  artifact: z.object({
    digest: z.string(),
    url: z.string(),
    name: z.string().nullable(),
    version: z.string().nullable(),
  }).nullable().openapi({ description: "What an update installs; null for a rollback" }),
  rollbackOf: z.string().nullable().openapi({
    description: "The rollout this rollback undoes (a policy's onAbort: rollback), or null",
  }),
  rolledBackBy: z.array(z.string()).openapi({
    description: "The rollback rollouts made to undo this one, oldest first",
  }),
  createdAt: z.string(),
  updatedAt: z.string(),
}).openapi("Rollout");

const RolloutDeviceSchema = z.object({
  deviceId: z.string(),
  position: z.number(),
  state: z.string(),
  digest: z.string().nullable().openapi({
    description:
      "In a rollback, the previous digest this device is sent back to (null when none was recorded: skipped); null in an update",
  }),
  token: z.string().nullable(),
  attempt: z.number(),
  lastStatus: z.number().nullable(),
  waitReason: z.enum(WAIT_REASONS).nullable().openapi({
    description:
      "Why the device waits beyond its state while the rollout runs here: waiting_window (its maintenance window is closed); else null",
  }),
  updatedAt: z.string(),
}).openapi("RolloutDevice");

const COMMAND_RESPONSES = {
  200: jsonResponse(RolloutSchema, "The rollout after the command"),
  ...AUTH_ERRORS,
  ...NOT_FOUND,
  ...CONFLICT,
  503: errorContent(
    "The service is starting or its database is unavailable; or, in cluster mode, the node that owns the rollout did not answer the forwarded command, or none owns it while it is being taken over (owner_unavailable): try again",
  ),
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
    operationId: `${command}Rollout`,
    tags: ["rollouts"],
    summary: COMMAND_SUMMARIES[command],
    description: `${
      COMMAND_SUMMARIES[command]
    }. The command is recorded with the caller's token name; 409 when the rollout's state does not allow it (a scheduled rollout takes only cancel: 409 scheduled).`,
    middleware: [requireRole("operator")] as const,
    request: { params: IdParam },
    responses: COMMAND_RESPONSES,
  });
}

/** The status each refusal is answered with. */
export const REFUSAL_STATUS: Record<RolloutRefusal, ContentfulStatusCode> = {
  unknown_policy: 422,
  invalid_policy: 400,
  inconsistent_policy: 422,
  unknown_artifact: 422,
  no_devices: 422,
  invalid_targets: 422,
  devices_busy: 409,
  nothing_to_roll_back: 422,
  nothing_to_rotate: 422,
  rotation_running: 409,
  insufficient_memory: 503,
  invalid_start_at: 422,
  start_in_past: 422,
  dynamic_ids: 422,
  unsigned_artifact: 422,
  no_window: 422,
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
      if (error instanceof OwnerUnavailableError) {
        throw new ApiError(503, "owner_unavailable", error.message);
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
        operationId: "createRollout",
        tags: ["rollouts"],
        summary: "Create and start a rollout, or a rollback",
        description:
          'Selects the target devices, fixes the policy (its hash and commit are recorded) and starts the first stage at once. With `action: "rollback"` (no artifact) each device is sent back to the previous version the server recorded for it, through the same stages and thresholds; devices with none recorded are skipped, and a rollback where no target has one is refused (422 nothing_to_roll_back). With a start time still to come (startAt here or in the policy), it is created scheduled: it starts by itself then, and can be cancelled before (pause, resume and promote answer 409 scheduled). A dynamic policy needs tags or all targets (422 dynamic_ids). Nothing is written when the rollout is refused.',
        middleware: [requireRole("operator")] as const,
        request: { body: jsonBody(CreateSchema) },
        responses: {
          201: jsonResponse(RolloutSchema, "The rollout"),
          ...AUTH_ERRORS,
          ...CONFLICT,
          422: errorContent(
            "Unknown artifact or policy, targets that select no registered device, a rollback where no target has a previous version recorded (nothing_to_roll_back), an inline policy whose rules contradict each other (inconsistent_policy), target devices whose tag value has no maintenance window while the policy has no fallback (no_window), or an artifact with no valid release manifest while release keys are configured and the policy does not say allowUnsigned (unsigned_artifact), a start time already past (start_in_past) or that is not an ISO 8601 date and time with an offset or names no real instant (invalid_start_at), or a dynamic policy with ids targets (dynamic_ids)",
          ),
          503: errorContent(
            "The orchestrator's heap has no room for this many devices, or the service is starting",
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
        operationId: "listRollouts",
        tags: ["rollouts"],
        summary: "List rollouts, newest first",
        description: "Rollouts newest first, optionally only those in one state.",
        request: {
          query: z.object({
            state: z.enum(ROLLOUT_STATES).optional(),
            cursor: UuidCursor,
            limit: Limit,
          }).strict(),
        },
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
        operationId: "getRollout",
        tags: ["rollouts"],
        summary: "A rollout: state, stage, counts, halt reason, policy hash and commit",
        description:
          "Live figures while this process runs the rollout (stages, bake deadline, pause reason); for a rollout it no longer runs (finished before a restart), counts and stage figures from the stored device states.",
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
        operationId: "listRolloutDevices",
        tags: ["rollouts"],
        summary: "A rollout's devices in rollout order",
        description:
          "Each device's state, attempt and last SRUP status in this rollout, in the order the rollout reaches them.",
        request: {
          params: IdParam,
          query: z.object({
            state: StateFilter.optional(),
            cursor: queryInt("cursor", 0, MAX_INT4).optional().openapi({
              description: "The nextCursor of the previous page: a position in the rollout",
            }),
            limit: Limit,
          }).strict(),
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
        const engine = orchestrator.runner(id)?.engine;
        return c.json({
          items: page.items.map((d) => ({
            deviceId: d.deviceId,
            position: d.position,
            state: d.state,
            digest: d.digest,
            token: d.token,
            attempt: d.attempt,
            lastStatus: d.lastStatus,
            waitReason: engine?.waitingForWindow(d.deviceId, d.position)
              ? "waiting_window" as const
              : null,
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
