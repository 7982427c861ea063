/** /v1/server: the server's identity and keys, and [SRUP-10] server key rotation. */
import { createRoute, z } from "@hono/zod-openapi";
import { countByServerKey, type Db, listActiveRollouts } from "../../db/mod.ts";
import type { Orchestrator } from "../../orchestrator/orchestrator.ts";
import type { PolicyRegistry } from "../../orchestrator/policy_registry.ts";
import { RolloutRefusedError, startRollout } from "../../orchestrator/create_rollout.ts";
import { rolloutView } from "../../orchestrator/rollout_view.ts";
import type { ServerKey } from "../../orchestrator/server_key.ts";
import { fromBase64, keyFingerprint } from "../../srup/mod.ts";
import { requireRole } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { plainText, prose } from "../fields.ts";
import { AUTH_ERRORS, CONFLICT, errorContent, jsonBody, jsonResponse, newApp } from "../openapi.ts";
import {
  PolicyField,
  REFUSAL_STATUS,
  RolloutFields,
  RolloutSchema,
  TargetsField,
} from "./rollouts.ts";

/** The highest SRUP frame version flotilla speaks ([SRUP-2.1] version 3, to devices registered so). */
export const PROTOCOL_VERSION = 3;

/** What the server routes need. */
export interface ServerDeps {
  db: Db;
  orchestrator: Orchestrator;
  policies: PolicyRegistry;
  publicUrl: string;
  /** What a device needs to be provisioned. */
  server: {
    serverId: string;
    publicKey: string;
    mqttUrl: string;
    /** [SRUP-12] FLOTILLA_RELEASE_KEYS (base64): what devices are provisioned with. */
    rootReleaseKeys?: string[];
    /** [SRUP-12] The version of the release key set in force: 1 without key sets. */
    releaseKeySetVersion?: number;
  };
  /** [SRUP-10] The next key, made now if there is none; absent, no key rotates (409). */
  nextKey?: () => Promise<ServerKey>;
}

// A rotation's default: every device at once, the engine's own concurrency, retries and timeouts.
const DEFAULT_ROTATION_POLICY = { name: "rotate-key", stages: [{ percent: 100 }] };

const KeySchema = z.object({
  fingerprint: z.string().openapi({
    description: "The first 16 hex characters of SHA-256 over the raw public key",
  }),
  publicKey: z.string().openapi({ description: "Base64 of the 32 raw bytes" }),
});

const ServerSchema = z.object({
  serverId: z.string(),
  publicKey: z.string().openapi({
    description: "The current key (base64): what a device is provisioned with",
  }),
  protocolVersion: z.number(),
  mqtt: z.object({ url: z.string() }),
  releaseKeys: z.array(z.string()).openapi({
    description:
      "[SRUP-7] Release public keys (base64) the server requires manifests to be signed by: FLOTILLA_RELEASE_KEYS, or the keys of the last key set of FLOTILLA_RELEASE_KEY_SETS ([SRUP-12]); empty when unset",
  }),
  rootReleaseKeys: z.array(z.string()).openapi({
    description:
      "[SRUP-12] FLOTILLA_RELEASE_KEYS (base64): what a device is provisioned with (`device run --release-key`); it learns later keys through the key sets",
  }),
  releaseKeySetVersion: z.number().int().openapi({
    description:
      "[SRUP-12] The version of the release key set in force: 1 for FLOTILLA_RELEASE_KEYS, one more for each key set document",
  }),
  currentKey: KeySchema.openapi({
    description:
      "[SRUP-10] The key that signs frames to every device that has not confirmed the next",
  }),
  nextKey: KeySchema.nullable().openapi({
    description:
      "[SRUP-10] The key a rotation moves devices to, and that signs their frames once they confirm it; null before the first rotation",
  }),
  keys: z.array(z.object({
    fingerprint: z.string(),
    role: z.enum(["current", "next", "unknown"]).openapi({
      description:
        "current or next: a key this server holds; unknown: a key it does not hold (a device left behind by a key swap)",
    }),
    devices: z.number().int(),
  })).openapi({
    description:
      "Registered devices per server key they trust; a device that never confirmed a rotation trusts the current key",
  }),
  rotation: z.object({ rollout: z.string(), state: z.string() }).nullable().openapi({
    description: "The key rotation scheduled, running or paused now, or null",
  }),
}).openapi("Server");

const RotateSchema = z.object({
  policy: PolicyField.optional().openapi({
    description:
      "Stages, concurrency, thresholds, retries, timeouts and keyOverlap; default one stage of every device",
  }),
  targets: TargetsField.optional().openapi({
    description:
      "Default every registered device; those that trust the next key already are skipped",
  }),
  name: plainText("name", 128).min(1).optional(),
  description: prose("description", 2000).optional(),
  startAt: RolloutFields.startAt,
}).strict().openapi("KeyRotation", {
  example: {
    policy: {
      name: "rotate",
      stages: [{ percent: 10 }, { percent: 100 }],
      keyOverlap: "1h",
      retry: { attempts: 5 },
    },
    targets: { all: true },
  },
});

/** The server sub-app. */
export function serverApp(deps: ServerDeps) {
  const { db, orchestrator } = deps;
  return newApp()
    .openapi(
      createRoute({
        method: "get",
        path: "/",
        operationId: "getServer",
        tags: ["server"],
        summary: "What a device needs to be provisioned, and which server key each device trusts",
        description:
          "The server's id, its current Ed25519 public key, the SRUP protocol version and the MQTT broker's URL: what `device provision` writes into a device's configuration. Also [SRUP-10] the current and next key's fingerprints, the devices per key they trust and the key rotation under way.",
        responses: { 200: jsonResponse(ServerSchema, "The server's identity"), ...AUTH_ERRORS },
      }),
      async (c) => {
        const keys = orchestrator.keys;
        const current = keys?.current.fingerprint ??
          keyFingerprint(fromBase64(deps.server.publicKey));
        const next = keys?.next;
        const counts = new Map<string, number>();
        for (const [fingerprint, n] of await countByServerKey(db)) {
          // A device that never confirmed a rotation trusts the key it was provisioned with.
          const key = fingerprint ?? current;
          counts.set(key, (counts.get(key) ?? 0) + n);
        }
        if (!counts.has(current)) counts.set(current, 0);
        if (next && !counts.has(next.fingerprint)) counts.set(next.fingerprint, 0);
        const rotation = (await listActiveRollouts(db)).find((r) => r.action === "rotate-key");
        const key = (k: ServerKey) => ({
          fingerprint: k.fingerprint,
          publicKey: k.publicKey.toBase64(),
        });
        return c.json({
          serverId: deps.server.serverId,
          publicKey: deps.server.publicKey,
          protocolVersion: PROTOCOL_VERSION,
          mqtt: { url: deps.server.mqttUrl },
          releaseKeys: orchestrator.releaseKeys.map((k) => k.toBase64()),
          rootReleaseKeys: deps.server.rootReleaseKeys ?? [],
          releaseKeySetVersion: deps.server.releaseKeySetVersion ?? 1,
          currentKey: keys
            ? key(keys.current)
            : { fingerprint: current, publicKey: deps.server.publicKey },
          nextKey: next ? key(next) : null,
          keys: [...counts].map(([fingerprint, devices]) => ({
            fingerprint,
            role: fingerprint === current
              ? "current" as const
              : fingerprint === next?.fingerprint
              ? "next" as const
              : "unknown" as const,
            devices,
          })),
          rotation: rotation ? { rollout: rotation.id, state: rotation.state } : null,
        }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/rotate-key",
        operationId: "rotateServerKey",
        tags: ["server"],
        summary: "Rotate the server key: a key rollout to the next key",
        description:
          "[SRUP-10] Makes the next key (FLOTILLA_SERVER_NEXT_KEY, default <data>/server-next.key; read if it exists) and starts a rollout with action rotate-key: each targeted device is sent a KEY_ROTATE signed by the key it trusts, carrying the next key and its proof, through the policy's stages, thresholds, retries and halts like any rollout. A device's 0x10 records it as trusting the next key, which signs its frames from then on. Devices that trust it already are skipped (key_trusted), and so are devices registered with frame version 1, which has no KEY_ROTATE (frame_version; the rollout's skippedReasons counts both); run it again to catch up devices that were offline. 409 rotation_running while a rotation is scheduled, running or paused; 422 nothing_to_rotate when every target trusts the next key already or is frame version 1.",
        middleware: [requireRole("admin")] as const,
        request: { body: jsonBody(RotateSchema) },
        responses: {
          201: jsonResponse(RolloutSchema, "The key rotation rollout"),
          ...AUTH_ERRORS,
          ...CONFLICT,
          422: errorContent(
            "Targets that select no registered device (no_devices, invalid_targets), every target trusting the next key already or registered with frame version 1 (nothing_to_rotate), an unknown or inconsistent policy, a start time already past (start_in_past) or malformed (invalid_start_at), or target devices with no maintenance window (no_window)",
          ),
          503: errorContent("The orchestrator's heap has no room for this many devices"),
        },
      }),
      async (c) => {
        const body = c.req.valid("json");
        if (!deps.nextKey) {
          throw new ApiError(409, "rotation_unavailable", "This server cannot rotate its key");
        }
        try {
          const row = await startRollout({ ...deps, nextKey: deps.nextKey }, {
            ...body,
            action: "rotate-key",
            policy: body.policy ?? DEFAULT_ROTATION_POLICY,
            targets: body.targets ?? { all: true },
            name: body.name ?? "Server key rotation",
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
    );
}
