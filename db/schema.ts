/** The drizzle pg-core schema shared by PGlite and PostgreSQL; migrations are generated from it. */
import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import {
  ACTIVE_ROLLOUT_STATES,
  type DeviceState,
  ROLLOUT_ACTIONS,
  ROLLOUT_STATES,
  type RolloutAction,
  type RolloutState,
  ROW_STATES,
} from "../actors/states.ts";

// The one vocabulary (actors/states.ts), re-exported for storage's callers.
export { ACTIVE_ROLLOUT_STATES, ROLLOUT_STATES, type RolloutState };

/** Roles of an API token: viewer reads, operator manages devices and rollouts, admin also tokens. */
export const TOKEN_ROLES = ["viewer", "operator", "admin"] as const;
/** An API token's role. */
export type TokenRole = typeof TOKEN_ROLES[number];

/** The state every rollout device starts in; the engine owns every other state word. */
export const PENDING = "pending" satisfies DeviceState;

/** The state of a device that already runs the rollout's artifact: never contacted. */
export const SKIPPED = "skipped" satisfies DeviceState;

/** Largest value of an unsigned 64-bit SRUP sequence id. */
export const MAX_U64 = (1n << 64n) - 1n;

const createdAt = () => timestamp({ withTimezone: true }).notNull().defaultNow();
const sha256Hex = (column: string) => sql.raw(`${column} ~ '^[0-9a-f]{64}$'`);
const fingerprintHex = (column: string) => sql.raw(`${column} ~ '^[0-9a-f]{16}$'`);
const oneOf = (column: string, words: readonly string[]) =>
  sql.raw(`${column} in (${words.map((word) => `'${word}'`).join(", ")})`);

/** Registered devices. */
export const devices = pgTable("devices", {
  id: uuid().primaryKey(),
  /** Ed25519 public key, base64 of the 32 raw bytes. */
  publicKey: text().notNull(),
  tags: jsonb().$type<Record<string, string>>().notNull().default({}),
  currentDigest: text(),
  previousDigest: text(),
  lastSeenAt: timestamp({ withTimezone: true }),
  /** Connected to the broker: set by the embedded broker's connection events, null when unknown. */
  online: boolean(),
  /** Highest sequence id accepted from the device; u64 does not fit a signed bigint. */
  lastSequence: numeric({ precision: 20, scale: 0, mode: "bigint" }),
  /** [SRUP-2.1] Highest frame version its agent speaks, as registered; null: 2. */
  frameVersion: integer(),
  /**
   * [SRUP-10] Fingerprint of the server key the device confirmed trusting (a KEY_ROTATE's 0x10);
   * null until it confirms one: the server's current key, as provisioned.
   */
  serverKey: text(),
  createdAt: createdAt(),
}, (t) => [
  check("devices_server_key_fingerprint", sql.raw("server_key ~ '^[0-9a-f]{16}$'")),
  check("devices_frame_version_known", sql.raw("frame_version between 1 and 3")),
  index("devices_tags_idx").using("gin", t.tags.op("jsonb_path_ops")),
  check("devices_last_sequence_u64", sql.raw(`last_sequence between 0 and ${MAX_U64}`)),
  check("devices_current_digest_hex", sha256Hex("current_digest")),
  check("devices_previous_digest_hex", sha256Hex("previous_digest")),
]);

/**
 * [SRUP-11] Every key change of a device: the audit record, and the keys it may never return to.
 * A key is retired once and adopted once per device, so the database itself refuses a downgrade.
 */
export const deviceKeyRotations = pgTable("device_key_rotations", {
  id: bigint({ mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
  deviceId: uuid().notNull().references(() => devices.id, { onDelete: "cascade" }),
  /** Base64 of the raw public keys before and after. */
  oldKey: text().notNull(),
  newKey: text().notNull(),
  /** The keys' fingerprints, as the API shows them: the first 16 hex characters of SHA-256. */
  oldFingerprint: text().notNull(),
  newFingerprint: text().notNull(),
  /** The DEVICE_KEY's sequence id. */
  sequence: numeric({ precision: 20, scale: 0, mode: "bigint" }).notNull(),
  at: timestamp({ withTimezone: true }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex("device_key_rotations_old_key_idx").on(t.deviceId, t.oldKey),
  uniqueIndex("device_key_rotations_new_key_idx").on(t.deviceId, t.newKey),
  check("device_key_rotations_old_fingerprint_hex", fingerprintHex("old_fingerprint")),
  check("device_key_rotations_new_fingerprint_hex", fingerprintHex("new_fingerprint")),
  check("device_key_rotations_sequence_u64", sql.raw(`sequence between 0 and ${MAX_U64}`)),
]);

/** Artifacts: uploaded files kept locally, or files hosted elsewhere registered by URL. */
export const artifacts = pgTable("artifacts", {
  /** Lowercase hex SHA-256 of the bytes. */
  digest: text().primaryKey(),
  /** Size in bytes; null for an external file whose size was not given. */
  size: bigint({ mode: "number" }),
  /** Where devices fetch an external file; null for an uploaded one. */
  url: text(),
  /** Storage path of an uploaded file in a directory; null for an external one or one in the database. */
  path: text(),
  /** The artifact_chunks holding an upload stored in the database (FLOTILLA_ARTIFACT_STORE=db). */
  blob: uuid(),
  contentType: text().notNull().default("application/octet-stream"),
  /** What operators call it, e.g. "sensor-firmware"; null for artifacts recorded before names. */
  name: text(),
  version: text(),
  releaseNotes: text(),
  /** [SRUP-7] Base64 of the signed release manifest; null for an unsigned artifact. */
  manifest: text(),
  createdAt: createdAt(),
}, () => [
  check("artifacts_digest_hex", sha256Hex("digest")),
  // Named before `blob` came: exactly one of the three.
  check("artifacts_url_or_path", sql.raw("num_nonnulls(url, path, blob) = 1")),
  check("artifacts_size_positive", sql.raw("size >= 0")),
]);

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => "bytea",
});

/**
 * The bytes of artifacts stored in the database, in pieces of about 1 MiB. Written in the
 * transaction that records the artifact (whose `blob` names them), so no upload is half there; no
 * foreign key, since the pieces are written before the digest, and so the row, is known.
 */
export const artifactChunks = pgTable("artifact_chunks", {
  blob: uuid().notNull(),
  /** Offset of the piece's first byte in the file. */
  start: bigint({ mode: "number" }).notNull(),
  data: bytea().notNull(),
}, (t) => [
  primaryKey({ columns: [t.blob, t.start] }),
  check("artifact_chunks_start_positive", sql.raw("start >= 0")),
]);

/** Rollouts of one artifact to a set of devices under a policy. */
export const rollouts = pgTable("rollouts", {
  /** UUIDv7, so ids sort by creation time. */
  id: uuid().primaryKey(),
  /** Optional words operators give a rollout, e.g. "Firmware 2.1 to the lab". */
  name: text(),
  description: text(),
  /** The API token's name that created it; null for rollouts made before it was recorded. */
  createdBy: text(),
  state: text().$type<RolloutState>().notNull().default("running"),
  stage: integer().notNull().default(0),
  /**
   * `update` installs the artifact; `rollback` sends each device back to its previous version;
   * `rotate-key` has each device trust the server's next key.
   */
  action: text().$type<RolloutAction>().notNull().default("update"),
  /** The rollout a rollback undoes (`onAbort: rollback`); null for an operator's own rollback. */
  rollbackOf: uuid(),
  /** [SRUP-10] For `rotate-key`: the fingerprint of the key the devices are moved to; else null. */
  serverKey: text(),
  /** Null unless an update: a rollback sends each device to its own previous digest (rollout_devices). */
  artifactDigest: text(),
  artifactUrl: text(),
  /** The full parsed policy, so a later edit of the file does not change a running rollout. */
  policy: jsonb().$type<Record<string, unknown>>().notNull(),
  policyName: text().notNull(),
  policySha256: text().notNull(),
  policyCommit: text(),
  /** The selector the operator gave, kept as written. */
  targets: jsonb().$type<Record<string, unknown>>().notNull(),
  deviceCount: integer().notNull(),
  /**
   * Devices of deviceCount that joined after creation (a dynamic rollout's targets): the last ones
   * by position, all in the last stage, so the stages split the first deviceCount - joined.
   */
  joined: integer().notNull().default(0),
  /** When a rollout created `scheduled` starts by itself; null for one that started at creation. */
  startAt: timestamp({ withTimezone: true }),
  haltReason: text(),
  haltDevice: uuid(),
  /** The engine's rollout-level state, for crash recovery. */
  snapshot: jsonb().$type<unknown>(),
  /** The cluster node whose lease drives it (PostgreSQL only); null when no node holds one. */
  owner: text(),
  /** Grows on every claim: the owner's state writes are conditional on it (fencing). */
  leaseEpoch: bigint({ mode: "number" }).notNull().default(0),
  /** When the owner's lease ends, by the database's clock; a node may claim it after. */
  leaseExpiresAt: timestamp({ withTimezone: true }),
  createdAt: createdAt(),
  updatedAt: createdAt(),
}, (t) => [
  index("rollouts_state_idx").on(t.state),
  index("rollouts_rollback_of_idx").on(t.rollbackOf),
  check("rollouts_state_known", oneOf("state", ROLLOUT_STATES)),
  check("rollouts_action_known", oneOf("action", ROLLOUT_ACTIONS)),
  check(
    "rollouts_artifact_unless_rollback",
    sql.raw(
      "(action <> 'update') = (artifact_digest is null) and (artifact_digest is null) = (artifact_url is null)",
    ),
  ),
  check("rollouts_digest_hex", sha256Hex("artifact_digest")),
  check(
    "rollouts_server_key_if_rotate",
    sql.raw("(action = 'rotate-key') = (server_key is not null) and server_key ~ '^[0-9a-f]{16}$'"),
  ),
  check("rollouts_policy_sha256_hex", sha256Hex("policy_sha256")),
  check("rollouts_stage_nonnegative", sql.raw("stage >= 0")),
  check("rollouts_joined_within_devices", sql.raw("joined between 0 and device_count")),
]);

/**
 * A device's state within one rollout. device_id has no foreign key: removing a device keeps the
 * rollout's record of it.
 */
export const rolloutDevices = pgTable("rollout_devices", {
  rolloutId: uuid().notNull().references(() => rollouts.id, { onDelete: "cascade" }),
  deviceId: uuid().notNull(),
  /** The device's order in the rollout's target list. */
  position: integer().notNull(),
  state: text().notNull().default(PENDING),
  /** Hex transaction token of the current INITIATE. */
  token: text(),
  attempt: integer().notNull().default(0),
  /** Engine-clock milliseconds at which the current wait times out. */
  deadline: bigint({ mode: "number" }),
  lastStatus: integer(),
  /** In a rollback, the digest this device is sent back to: its previous one at creation. */
  digest: text(),
  updatedAt: createdAt(),
}, (t) => [
  primaryKey({ columns: [t.rolloutId, t.deviceId] }),
  uniqueIndex("rollout_devices_position_idx").on(t.rolloutId, t.position),
  // No index covers state or token: the engine rewrites both on every transition, and an indexed
  // column makes each of those writes a non-HOT update that inserts into every index (0002).
  // Rows also leave room on their page for those updates (fillfactor, 0003).
  index("rollout_devices_device_idx").on(t.deviceId),
  check("rollout_devices_last_status_byte", sql.raw("last_status between 0 and 255")),
  check("rollout_devices_token_hex", sql.raw("token ~ '^([0-9a-f]{2})+$'")),
  check("rollout_devices_attempt_nonnegative", sql.raw("attempt >= 0")),
  check("rollout_devices_state_known", oneOf("state", ROW_STATES)),
  check("rollout_devices_digest_hex", sha256Hex("digest")),
]);

/** The audit log: every transition and every operator action. */
export const events = pgTable("events", {
  id: bigint({ mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
  rolloutId: uuid(),
  deviceId: uuid(),
  type: text().notNull(),
  /** Who did it: the API token's name for an operator action, null for the engine. */
  actor: text(),
  data: jsonb().$type<Record<string, unknown>>().notNull().default({}),
  at: timestamp({ withTimezone: true }).notNull().defaultNow(),
}, (t) => [
  index("events_rollout_idx").on(t.rolloutId, t.id),
  index("events_device_idx").on(t.deviceId, t.id),
]);

/** API tokens, stored as SHA-256 hashes only. */
export const apiTokens = pgTable("api_tokens", {
  id: uuid().primaryKey(),
  name: text().notNull(),
  role: text().$type<TokenRole>().notNull(),
  /** Lowercase hex SHA-256 of the plaintext token. */
  hash: text().notNull().unique(),
  createdAt: createdAt(),
  lastUsedAt: timestamp({ withTimezone: true }),
  revokedAt: timestamp({ withTimezone: true }),
}, (t) => [
  uniqueIndex("api_tokens_live_name_idx").on(t.name).where(sql`revoked_at is null`),
  check("api_tokens_role_known", oneOf("role", TOKEN_ROLES)),
  check("api_tokens_hash_hex", sha256Hex("hash")),
]);

/** The cluster's nodes: each heartbeats while it runs (PostgreSQL only). */
export const nodes = pgTable("nodes", {
  /** FLOTILLA_NODE_ID. */
  id: text().primaryKey(),
  /** When this node id last started, by the database's clock. */
  startedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  heartbeatAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
});

/** Small server-wide values, such as the sequence high-water mark. */
export const serverState = pgTable("server_state", {
  key: text().primaryKey(),
  value: text().notNull(),
  updatedAt: createdAt(),
});
