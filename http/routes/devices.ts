/** /v1/devices: register, list, inspect and remove devices. */
import { createRoute, z } from "@hono/zod-openapi";
import {
  type Db,
  deleteDevice,
  type Device,
  deviceRolloutHistory,
  type DeviceRolloutHistoryItem,
  getDevice,
  type KeyRotation,
  listDevices,
  listKeyRotations,
  MAX_U64,
  registerDevice,
  registerDevices,
  setDeviceTags,
} from "../../db/mod.ts";
import { ROLLOUT_ACTIONS } from "../../actors/mod.ts";
import { keyFingerprint } from "../../srup/mod.ts";
import type { Orchestrator } from "../../orchestrator/orchestrator.ts";
import { requireRole } from "../auth.ts";
import { ApiError, orConflict } from "../errors.ts";
import { Digest, StateFilter, TagFilter, Tags } from "../fields.ts";
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

const MAX_BATCH = 10_000;

/** Base64 of 32 bytes: 42 characters, one whose low bits are zero, and the padding. */
const PublicKey = z.string().regex(
  /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/,
  "publicKey must be base64 of the 32-byte raw Ed25519 public key",
).openapi({ example: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=" });

const DeviceSchema = z.object({
  id: z.uuid(),
  publicKey: z.string(),
  keyFingerprint: z.string().openapi({
    description:
      "[SRUP-11.4] The fingerprint of the device's current public key: the first 16 hex characters of SHA-256 over its 32 raw bytes",
  }),
  tags: z.record(z.string(), z.string()),
  currentDigest: z.string().nullable(),
  previousDigest: z.string().nullable(),
  lastSeenAt: z.string().nullable(),
  /** Connected to the embedded broker; null when not known (an external broker). */
  online: z.boolean().nullable(),
  /** A decimal string: a u64 does not fit a JSON number. */
  lastSequence: z.string().nullable().openapi({
    description:
      "The highest SRUP sequence id accepted from the device (a decimal string, as a u64 does not fit a JSON number); null when none yet or after a reset to none",
    example: "1733097600000",
  }),
  frameVersion: z.number().int().nullable().openapi({
    description:
      "[SRUP-2.1] The highest SRUP frame version its agent speaks, as registered; null means 2. Version 3 devices get signed release manifests",
  }),
  serverKey: z.string().nullable().openapi({
    description:
      "[SRUP-10] Fingerprint of the server key the device confirmed trusting in a key rotation; null when it never confirmed one: it trusts the key it was provisioned with",
  }),
  createdAt: z.string(),
  rollout: z.object({ id: z.string(), state: z.string() }).nullable().optional(),
}).openapi("Device");

// 0 to 18446744073709551615 (2^64 - 1) in decimal, as one pattern, so the document says exactly
// what is accepted: 19 digits or fewer, or 20 digits no greater, digit by digit.
const U64_TEXT = new RegExp(
  "^(?:[0-9]{1,19}|1[0-7][0-9]{18}|18[0-3][0-9]{17}|184[0-3][0-9]{16}|1844[0-5][0-9]{15}|" +
    "18446[0-6][0-9]{14}|184467[0-3][0-9]{13}|1844674[0-3][0-9]{12}|184467440[0-6][0-9]{10}|" +
    "1844674407[0-2][0-9]{9}|18446744073[0-6][0-9]{8}|1844674407370[0-8][0-9]{6}|" +
    "18446744073709[0-4][0-9]{5}|184467440737095[0-4][0-9]{4}|18446744073709550[0-9]{3}|" +
    "18446744073709551[0-5][0-9]{2}|1844674407370955160[0-9]|1844674407370955161[0-4]|" +
    "18446744073709551615)$",
);

const SequenceResetSchema = z.object({
  floor: z.string().regex(U64_TEXT, `floor must be a decimal string from 0 to ${MAX_U64}`)
    .nullable().optional().openapi({
      description:
        "The new floor: the next RESPONSE must carry a higher sequence id. A decimal string up to 18446744073709551615; null or left out clears it, so any sequence id is accepted next, as for a new device",
      example: "0",
    }),
}).strict().openapi("SequenceReset");

const SequenceResetResultSchema = z.object({
  id: z.uuid(),
  previous: z.string().nullable().openapi({ description: "The floor replaced (decimal)" }),
  lastSequence: z.string().nullable().openapi({ description: "The floor now in force (decimal)" }),
}).openapi("SequenceResetResult");

const NewDeviceSchema = z.object({
  id: z.uuid().openapi({ example: "6f1c2f4e-8a3b-4c7d-9e2f-0a1b2c3d4e5f" }),
  publicKey: PublicKey,
  tags: Tags.optional(),
  frameVersion: z.int().min(1).max(3).optional().openapi({
    description:
      "[SRUP-2.1] The highest SRUP frame version the device's agent speaks, as `device provision` prints it; left out means 2. Version 3 devices get the signed release manifest and a not-after time in each INITIATE",
    example: 3,
  }),
}).strict().openapi("NewDevice");

/** [SRUP-11] One key change of a device, from its audit record. */
const KeyRotationSchema = z.object({
  oldFingerprint: z.string(),
  newFingerprint: z.string(),
  /** A decimal string: a u64 does not fit a JSON number. */
  sequence: z.string(),
  at: z.string(),
}).openapi("KeyRotation");

/** A device's part in one rollout. */
export const HistorySchema = z.object({
  rolloutId: z.string(),
  rolloutName: z.string().nullable(),
  rolloutState: z.string(),
  rolloutAction: z.enum(ROLLOUT_ACTIONS),
  artifactDigest: z.string().nullable().openapi({
    description:
      "The artifact installed; in a rollback, the previous digest this device was sent back to (null when it had none and was skipped)",
  }),
  state: z.string(),
  attempt: z.number(),
  lastStatus: z.number().nullable(),
  updatedAt: z.string(),
});

/** A device's part in one rollout as the API shows it. */
export function historyJson(item: DeviceRolloutHistoryItem) {
  return {
    rolloutId: item.rolloutId,
    rolloutName: item.rollout.name,
    rolloutState: item.rollout.state,
    rolloutAction: item.rollout.action,
    artifactDigest: item.rollout.artifactDigest ?? item.digest,
    state: item.state,
    attempt: item.attempt,
    lastStatus: item.lastStatus,
    updatedAt: item.updatedAt.toISOString(),
  };
}

/** A device as the API shows it. */
export function deviceJson(device: Device & { rollout?: { id: string; state: string } | null }) {
  return {
    id: device.id,
    publicKey: device.publicKey,
    keyFingerprint: keyFingerprint(Uint8Array.fromBase64(device.publicKey)),
    tags: device.tags,
    currentDigest: device.currentDigest,
    previousDigest: device.previousDigest,
    lastSeenAt: device.lastSeenAt?.toISOString() ?? null,
    online: device.online,
    lastSequence: device.lastSequence?.toString() ?? null,
    frameVersion: device.frameVersion,
    serverKey: device.serverKey,
    createdAt: device.createdAt.toISOString(),
    ...(device.rollout === undefined ? {} : { rollout: device.rollout }),
  };
}

function keyRotationJson(rotation: KeyRotation) {
  return {
    oldFingerprint: rotation.oldFingerprint,
    newFingerprint: rotation.newFingerprint,
    sequence: rotation.sequence.toString(),
    at: rotation.at.toISOString(),
  };
}

/**
 * Reads `tag=key=value` query parameters, the syntax `ctl` and the docs use; `key:value` is still
 * read for older clients (a tag key holds neither character, so the first one splits).
 */
function parseTags(tag: string | string[] | undefined): Record<string, string> | undefined {
  if (tag === undefined) return undefined;
  const tags: Record<string, string> = {};
  for (const pair of Array.isArray(tag) ? tag : [tag]) {
    const at = pair.search(/[=:]/);
    tags[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return tags;
}

/**
 * The devices sub-app. `presence` says whether a device is connected when the broker can tell (the
 * embedded one): a device registered after it connected is online at once, one never connected
 * offline rather than unknown.
 */
export function devicesApp(
  db: Db,
  orchestrator: Orchestrator,
  presence?: (deviceId: string) => boolean,
) {
  const withPresence = <T extends { id: string }>(device: T) =>
    presence ? { ...device, online: presence(device.id.toLowerCase()) } : device;
  return newApp()
    .openapi(
      createRoute({
        method: "post",
        path: "/",
        operationId: "registerDevice",
        tags: ["devices"],
        summary: "Register a device",
        description:
          "Registers a device by its id and the raw Ed25519 public key it signs its RESPONSEs with; tags select it for rollouts. 409 if the id is registered already.",
        middleware: [requireRole("operator")] as const,
        request: { body: jsonBody(NewDeviceSchema) },
        responses: {
          201: jsonResponse(DeviceSchema, "The registered device"),
          ...AUTH_ERRORS,
          ...CONFLICT,
        },
      }),
      async (c) => {
        const device = await orConflict(
          "device_exists",
          registerDevice(db, withPresence(c.req.valid("json"))),
        );
        await orchestrator.offer(device);
        return c.json(deviceJson(device), 201);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/batch",
        operationId: "registerDevices",
        tags: ["devices"],
        summary: "Register up to 10,000 devices at once, all or nothing",
        description:
          'With ifExists "skip", ids already registered are left as they are and counted as skipped; with "error" (the default) any of them fails the whole batch with 409.',
        middleware: [requireRole("operator")] as const,
        request: {
          body: jsonBody(
            z.object({
              devices: z.array(NewDeviceSchema).min(1).max(MAX_BATCH),
              ifExists: z.enum(["error", "skip"]).optional(),
            }).strict(),
          ),
        },
        responses: {
          201: jsonResponse(
            z.object({ created: z.number(), skipped: z.number() }),
            "How many were registered and skipped",
          ),
          ...AUTH_ERRORS,
          ...CONFLICT,
          422: errorContent("A device id is listed twice"),
        },
      }),
      async (c) => {
        const body = c.req.valid("json");
        const ids = new Set<string>();
        for (const device of body.devices) {
          const id = device.id.toLowerCase();
          if (ids.has(id)) {
            // Well formed, as the document says, but not something to carry out: 422.
            throw new ApiError(422, "duplicate_device", `Device "${device.id}" is listed twice`);
          }
          ids.add(id);
        }
        const result = await orConflict(
          "device_exists",
          registerDevices(db, body.devices.map(withPresence), {
            skipExisting: body.ifExists === "skip",
          }),
        );
        // One at a time, and only while a dynamic rollout runs (offer() returns at once otherwise).
        for (const device of body.devices) {
          await orchestrator.offer({ id: device.id.toLowerCase(), tags: device.tags ?? {} });
        }
        return c.json(result, 201);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/",
        operationId: "listDevices",
        tags: ["devices"],
        summary: "List devices",
        description:
          "Filter with tag=key=value (repeatable, all must match; key:value is also read), state (the device's state in its latest rollout), q (a prefix of the id), online, artifact (the digest it runs), and seenAfter / seenBefore (ISO times; seenBefore includes devices never seen).",
        request: {
          query: z.object({
            tag: z.union([TagFilter, z.array(TagFilter).max(32)]).optional(),
            state: StateFilter.optional(),
            q: z.string().regex(/^[0-9a-fA-F-]{1,36}$/, "q must be the start of a device id")
              .optional(),
            online: z.enum(["true", "false"]).optional(),
            artifact: Digest.optional(),
            seenAfter: z.iso.datetime({ offset: true }).optional(),
            seenBefore: z.iso.datetime({ offset: true }).optional(),
            cursor: UuidCursor,
            limit: Limit,
          }).strict(),
        },
        responses: {
          200: jsonResponse(
            z.object({ items: z.array(DeviceSchema), nextCursor: z.string().nullable() }),
            "A page of devices",
          ),
          ...AUTH_ERRORS,
        },
      }),
      async (c) => {
        const query = c.req.valid("query");
        const page = await listDevices(db, {
          tags: parseTags(query.tag),
          state: query.state,
          idPrefix: query.q,
          online: query.online === undefined ? undefined : query.online === "true",
          digest: query.artifact,
          seenAfter: query.seenAfter === undefined ? undefined : new Date(query.seenAfter),
          seenBefore: query.seenBefore === undefined ? undefined : new Date(query.seenBefore),
          cursor: query.cursor,
          limit: query.limit,
        });
        return c.json({ items: page.items.map(deviceJson), nextCursor: page.nextCursor }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/{id}",
        operationId: "getDevice",
        tags: ["devices"],
        summary: "A device, with its rollout history",
        description:
          "The device, its state in its latest rollout, and its 50 latest rollouts; /v1/devices/{id}/rollouts pages back through all of them.",
        request: { params: IdParam },
        responses: {
          200: jsonResponse(
            DeviceSchema.extend({
              history: z.array(HistorySchema),
              keyRotations: z.array(KeyRotationSchema).openapi({
                description:
                  "[SRUP-11] The device's key changes, oldest first: fingerprints before and after, the DEVICE_KEY's sequence id and when the server recorded it",
              }),
            }),
            "The device",
          ),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        const device = await getDevice(db, id);
        if (!device) throw new ApiError(404, "not_found", `No device "${id}"`);
        const history = await deviceRolloutHistory(db, id, { limit: 50 });
        return c.json({
          ...deviceJson(device),
          history: history.map(historyJson),
          keyRotations: (await listKeyRotations(db, id)).map(keyRotationJson),
        }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/{id}",
        operationId: "updateDevice",
        tags: ["devices"],
        summary: "Replace a device's tags",
        description:
          "Replaces the device's tags with those given. A device whose new tags match the targets of a running dynamic rollout joins its last stage.",
        middleware: [requireRole("operator")] as const,
        request: {
          params: IdParam,
          body: jsonBody(z.object({ tags: Tags }).strict().openapi("DeviceUpdate")),
        },
        responses: {
          200: jsonResponse(DeviceSchema, "The device"),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        const device = await setDeviceTags(db, id, c.req.valid("json").tags);
        if (!device) throw new ApiError(404, "not_found", `No device "${id}"`);
        await orchestrator.offer(device);
        return c.json(deviceJson(device), 200);
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/{id}",
        operationId: "deleteDevice",
        tags: ["devices"],
        summary: "Remove a device",
        description:
          "Removes the device and its rollout history; 409 while a running rollout includes it.",
        middleware: [requireRole("operator")] as const,
        request: { params: IdParam },
        responses: {
          204: { description: "Removed" },
          ...AUTH_ERRORS,
          ...NOT_FOUND,
          ...CONFLICT,
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        if (!await orConflict("device_busy", deleteDevice(db, id))) {
          throw new ApiError(404, "not_found", `No device "${id}"`);
        }
        orchestrator.forgetDevice(id);
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/{id}/sequence-reset",
        operationId: "resetDeviceSequence",
        tags: ["devices"],
        summary: "Reset a device's sequence floor",
        description:
          "For a device locked out by its own sequence id (a RESPONSE with a huge one makes every later RESPONSE a replay): sets the highest sequence id accepted from it to `floor` (null or left out: none). Recorded as a `device.sequence_reset` event with the token, the floor replaced and the new one; in force for the next RESPONSE once this answers.",
        middleware: [requireRole("operator")] as const,
        request: {
          params: IdParam,
          body: {
            content: { "application/json": { schema: SequenceResetSchema } },
            required: false,
          },
        },
        responses: {
          200: jsonResponse(
            SequenceResetResultSchema,
            "The floor replaced and the one now in force",
          ),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
          // The body is optional: one sent as anything but JSON is refused, never read as empty.
          415: errorContent("A body that is not application/json"),
        },
      }),
      async (c) => {
        // The canonical form, as the link keys devices by it (`/v1/devices/ABC…` is the same device).
        const id = c.req.valid("param").id.toLowerCase();
        const body = c.req.valid("json") ?? {};
        if (!await getDevice(db, id)) throw new ApiError(404, "not_found", `No device "${id}"`);
        const floor = body.floor == null ? null : BigInt(body.floor);
        const caller = c.get("caller");
        const previous = await orchestrator.resetSequence(id, floor, caller);
        return c.json({
          id,
          previous: previous?.toString() ?? null,
          lastSequence: floor?.toString() ?? null,
        }, 200);
      },
    );
}
