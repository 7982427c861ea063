/** The service's settings, read from the environment with the defaults of `deno task start`. */
import { join, resolve } from "node:path";
import { MAX_TOKEN_LENGTH } from "../db/mod.ts";

/** Everything `serve` can be told. */
export interface ServiceConfig {
  dataDir: string;
  /** PostgreSQL URL; unset means embedded PGlite under `dataDir`. */
  databaseUrl?: string;
  /** External broker; unset means the embedded one on `mqttPort`. */
  mqttUrl?: string;
  mqttPort: number;
  /** MQTT protocol level with MQTT_URL; unset: 5, falling back to 3.1.1 when the broker refuses 5. */
  mqttProtocolVersion?: 4 | 5;
  mqttCa?: string;
  mqttCert?: string;
  mqttKey?: string;
  /** PEM file of the server's Ed25519 key; unset means `<dataDir>/server.key`, made on first start. */
  serverKeyFile?: string;
  /**
   * [SRUP-10] PEM file of the server's next key, read at start if it exists and written by the
   * first key rotation if not; unset means `<dataDir>/server-next.key`.
   */
  serverNextKeyFile?: string;
  policyDir: string;
  host: string;
  port: number;
  /** Base URL devices fetch artifacts from; default from host, port and TLS. */
  publicUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  adminToken?: string;
  /** Where uploads are kept: files in `artifactDir`, or PostgreSQL (`db`), which every node sees. */
  artifactStore: ArtifactStoreKind;
  /** The directory of uploaded files; with `db`, where files uploaded before the switch are read. */
  artifactDir: string;
  maxArtifactBytes: number;
  maxJsonBytes: number;
  /** A request body that sends nothing for this long is cut off with 408. */
  uploadIdleTimeoutMs: number;
  /** JSON log lines for MQTT events (FLOTILLA_LOG_MQTT=1). */
  logMqtt?: boolean;
  /** [SRUP-7] Release public keys (FLOTILLA_RELEASE_KEYS); with any, rollouts need a manifest. */
  releaseKeys?: Uint8Array[];
  /**
   * [SRUP-12] Key set documents (FLOTILLA_RELEASE_KEY_SETS), in chain order from the release keys:
   * the last one's keys are those enforced, and each version 3 INITIATE is preceded by the chain.
   */
  releaseKeySets?: Uint8Array[];
  /** This node's id in a cluster (FLOTILLA_NODE_ID); default "n1". */
  nodeId: string;
  /** How long a rollout lease lasts without renewal (FLOTILLA_LEASE_TTL_MS); default 10 s. */
  leaseTtlMs: number;
}

/** The node id of a node started without FLOTILLA_NODE_ID: a one-node cluster. */
export const DEFAULT_NODE_ID = "n1";

// Ids go into MQTT client ids and logs: short, printable, no separators of either.
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

// Below this a lease cannot be renewed reliably (renewal every third, a database round trip).
const MIN_LEASE_TTL_MS = 300;
const MAX_LEASE_TTL_MS = 3_600_000;

/** The artifact stores FLOTILLA_ARTIFACT_STORE names. */
export const ARTIFACT_STORES = ["db", "dir"] as const;
/** Where uploaded artifacts are kept. */
export type ArtifactStoreKind = typeof ARTIFACT_STORES[number];

/** A setting that cannot be used; one line naming the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

/** A set variable's value; unset and empty are the same (the default). */
function setting(env: Env, name: string): string | undefined {
  const text = env[name];
  return text === undefined || text === "" ? undefined : text;
}

function port(env: Env, name: string, fallback: number): number {
  const text = setting(env, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > 65535) {
    throw new ConfigError(`Invalid ${name}: "${text}" is not a port number (0 to 65535)`);
  }
  return value;
}

function size(env: Env, name: string, fallback: number): number {
  const text = setting(env, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`Invalid ${name}: "${text}" is not a positive number of bytes`);
  }
  return value;
}

function milliseconds(env: Env, name: string, fallback: number): number {
  const text = setting(env, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  // setTimeout holds at most 2^31 - 1 ms (24.8 days); more would fire at once.
  if (!/^\d+$/.test(text) || value < 1 || value > 2 ** 31 - 1) {
    throw new ConfigError(
      `Invalid ${name}: "${text}" is not a number of milliseconds (1 to 2147483647)`,
    );
  }
  return value;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
// RFC 1123 labels; an all-numeric last label would be an IPv4 address (RFC 3696 section 2).
const HOST_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** An address to bind: IPv4, IPv6 or a host name, checked before Deno.serve says "lookup failed". */
function host(env: Env, name: string, fallback: string): string {
  const text = setting(env, name);
  if (text === undefined) return fallback;
  const ipv4 = IPV4.exec(text);
  const valid = ipv4
    ? ipv4.slice(1).every((octet) => Number(octet) <= 255)
    : text.includes(":")
    ? URL.canParse(`http://[${text}]/`)
    : HOST_NAME.test(text) && !/^[\d.]+$/.test(text);
  if (!valid) {
    throw new ConfigError(`Invalid ${name}: "${text}" is not an IP address or host name`);
  }
  return text;
}

/** A directory that must exist when the variable is set. */
function directory(env: Env, name: string, fallback: string): string {
  const text = setting(env, name);
  if (text === undefined) return resolve(fallback);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(text);
  } catch (error) {
    throw new ConfigError(`Invalid ${name}: "${text}" cannot be read: ${(error as Error).message}`);
  }
  if (!info.isDirectory) throw new ConfigError(`Invalid ${name}: "${text}" is not a directory`);
  return resolve(text);
}

/** A directory that is made when missing, but must not be something else. */
function dataDirectory(env: Env, name: string, fallback: string): string {
  const path = resolve(setting(env, name) ?? fallback);
  let info: Deno.FileInfo | undefined;
  try {
    info = Deno.statSync(path);
  } catch {
    info = undefined;
  }
  if (info && !info.isDirectory) {
    throw new ConfigError(
      `Invalid ${name}: "${setting(env, name) ?? fallback}" is not a directory`,
    );
  }
  return path;
}

const PEM_LABELS = {
  certificate: /-----BEGIN CERTIFICATE-----/,
  "private key": /-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----/,
} as const;

/** A PEM file holding a certificate or a private key, read now so a bad file is named at start. */
function pemFile(env: Env, name: string, kind: keyof typeof PEM_LABELS): string | undefined {
  const path = setting(env, name);
  if (path === undefined) return undefined;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw new ConfigError(`Invalid ${name}: "${path}" cannot be read: ${(error as Error).message}`);
  }
  if (!PEM_LABELS[kind].test(text)) {
    throw new ConfigError(`Invalid ${name}: "${path}" holds no PEM ${kind}`);
  }
  return path;
}

/** A URL with one of `protocols` (each with its colon, as URL.protocol has it). */
function url(env: Env, name: string, protocols: string[], expected: string): string | undefined {
  const text = setting(env, name);
  if (text === undefined) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(text);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !protocols.includes(parsed.protocol) || !parsed.hostname) {
    throw new ConfigError(`Invalid ${name}: "${text}" is not ${expected}`);
  }
  return text;
}

/** A node id: letters, digits, `_` and `-`, at most 32, starting with a letter or digit. */
function nodeId(env: Env, name: string): string {
  const text = setting(env, name);
  if (text === undefined) return DEFAULT_NODE_ID;
  if (!NODE_ID.test(text)) {
    throw new ConfigError(
      `Invalid ${name}: "${
        text.slice(0, 64)
      }" is not a node id (1 to 32 letters, digits, "_" or "-", starting with a letter or digit)`,
    );
  }
  return text;
}

function leaseTtl(env: Env, name: string): number {
  const text = setting(env, name);
  if (text === undefined) return 10_000;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < MIN_LEASE_TTL_MS || value > MAX_LEASE_TTL_MS) {
    throw new ConfigError(
      `Invalid ${name}: "${text}" is not a number of milliseconds (${MIN_LEASE_TTL_MS} to ${MAX_LEASE_TTL_MS})`,
    );
  }
  return value;
}

/** `4` (MQTT 3.1.1) or `5`; unset: undefined (5, falling back to 4). */
function protocolVersion(env: Env, name: string): 4 | 5 | undefined {
  const text = setting(env, name);
  if (text === undefined) return undefined;
  if (text === "4" || text === "5") return Number(text) as 4 | 5;
  throw new ConfigError(`Invalid ${name}: "${text}" is not 4 (MQTT 3.1.1) or 5 (MQTT 5)`);
}

/** `1` (on), `0` or unset (off). */
/** A comma-separated list of base64 raw Ed25519 public keys, as `srup keygen` prints them. */
function publicKeys(env: Env, name: string): Uint8Array[] {
  const text = setting(env, name);
  if (text === undefined) return [];
  return text.split(",").map((item) => {
    const trimmed = item.trim();
    let key: Uint8Array | undefined;
    try {
      key = Uint8Array.fromBase64(trimmed);
    } catch {
      key = undefined;
    }
    if (key?.length !== 32) {
      throw new ConfigError(
        `Invalid ${name}: "${trimmed}" is not base64 of a 32-byte Ed25519 public key`,
      );
    }
    return key;
  });
}

/** A comma-separated list of key set document files; their chain is checked at start. */
function keySetFiles(env: Env, name: string, releaseKeys: Uint8Array[]): Uint8Array[] {
  const text = setting(env, name);
  if (text === undefined) return [];
  if (releaseKeys.length === 0) {
    throw new ConfigError(
      `Invalid ${name}: key sets follow from FLOTILLA_RELEASE_KEYS, which is not set`,
    );
  }
  return text.split(",").map((item) => {
    const path = item.trim();
    try {
      return Deno.readFileSync(path);
    } catch (error) {
      throw new ConfigError(
        `Invalid ${name}: "${path}" cannot be read: ${(error as Error).message}`,
      );
    }
  });
}

function flag(env: Env, name: string): boolean {
  const text = setting(env, name);
  if (text === undefined || text === "0") return false;
  if (text === "1") return true;
  throw new ConfigError(`Invalid ${name}: "${text}" is not 1 (on) or 0 (off)`);
}

/**
 * Reads the settings from `env` (default: the process environment). Each bad value is a
 * ConfigError of one line naming the variable and its value; docs/operations.md lists them.
 */
export function readConfig(env: Env = Deno.env.toObject()): ServiceConfig {
  const tlsCert = pemFile(env, "FLOTILLA_TLS_CERT", "certificate");
  const tlsKey = pemFile(env, "FLOTILLA_TLS_KEY", "private key");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError(
      "Invalid TLS settings: set both FLOTILLA_TLS_CERT and FLOTILLA_TLS_KEY, or neither",
    );
  }
  const adminToken = setting(env, "FLOTILLA_ADMIN_TOKEN");
  // The value is a secret: the message gives its length, never the value.
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError("Invalid FLOTILLA_ADMIN_TOKEN: it must be at least 16 characters");
  }
  if (adminToken !== undefined && adminToken.length > MAX_TOKEN_LENGTH) {
    throw new ConfigError(
      `Invalid FLOTILLA_ADMIN_TOKEN: it must be at most ${MAX_TOKEN_LENGTH} characters`,
    );
  }
  const databaseUrl = url(
    env,
    "DATABASE_URL",
    ["postgres:", "postgresql:"],
    "a postgres:// or postgresql:// URL",
  );
  const mqttUrl = url(env, "MQTT_URL", ["mqtt:", "mqtts:"], "an mqtt:// or mqtts:// URL");
  const mqttCa = pemFile(env, "FLOTILLA_MQTT_CA", "certificate");
  const mqttCert = pemFile(env, "FLOTILLA_MQTT_CERT", "certificate");
  const mqttKey = pemFile(env, "FLOTILLA_MQTT_KEY", "private key");
  if ((mqttCert === undefined) !== (mqttKey === undefined)) {
    throw new ConfigError(
      "Invalid MQTT TLS settings: set both FLOTILLA_MQTT_CERT and FLOTILLA_MQTT_KEY, or neither",
    );
  }
  if ((mqttCa || mqttCert) && !mqttUrl?.startsWith("mqtts:")) {
    throw new ConfigError(
      `Invalid MQTT_URL: "${
        mqttUrl ?? ""
      }" must be mqtts:// when FLOTILLA_MQTT_CA, _CERT or _KEY is set`,
    );
  }
  const releaseKeys = publicKeys(env, "FLOTILLA_RELEASE_KEYS");
  const dataDir = dataDirectory(env, "FLOTILLA_DATA_DIR", "./data");
  const node = nodeId(env, "FLOTILLA_NODE_ID");
  if (setting(env, "FLOTILLA_NODE_ID") !== undefined && databaseUrl === undefined) {
    throw new ConfigError(
      "Invalid FLOTILLA_NODE_ID: a cluster shares one PostgreSQL, so it needs DATABASE_URL (embedded PGlite is a single node)",
    );
  }
  return {
    nodeId: node,
    leaseTtlMs: leaseTtl(env, "FLOTILLA_LEASE_TTL_MS"),
    dataDir,
    databaseUrl,
    mqttUrl,
    mqttPort: port(env, "FLOTILLA_MQTT_PORT", 1883),
    mqttProtocolVersion: protocolVersion(env, "FLOTILLA_MQTT_PROTOCOL_VERSION"),
    mqttCa,
    mqttCert,
    mqttKey,
    serverKeyFile: pemFile(env, "FLOTILLA_SERVER_KEY", "private key"),
    serverNextKeyFile: setting(env, "FLOTILLA_SERVER_NEXT_KEY"),
    policyDir: directory(env, "FLOTILLA_POLICY_DIR", "./policies"),
    host: host(env, "FLOTILLA_HOST", "127.0.0.1"),
    port: port(env, "PORT", 8080),
    publicUrl: url(env, "FLOTILLA_PUBLIC_URL", ["http:", "https:"], "an http:// or https:// URL")
      ?.replace(/\/+$/, ""),
    tlsCert,
    tlsKey,
    adminToken,
    artifactStore: artifactStore(env, databaseUrl),
    artifactDir: dataDirectory(env, "FLOTILLA_ARTIFACT_DIR", join(dataDir, "artifacts")),
    maxArtifactBytes: size(env, "FLOTILLA_MAX_ARTIFACT_BYTES", 1024 ** 3),
    maxJsonBytes: size(env, "FLOTILLA_MAX_JSON_BYTES", 64 * 1024 ** 2),
    uploadIdleTimeoutMs: milliseconds(env, "FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS", 30_000),
    logMqtt: flag(env, "FLOTILLA_LOG_MQTT"),
    releaseKeys,
    releaseKeySets: keySetFiles(env, "FLOTILLA_RELEASE_KEY_SETS", releaseKeys),
  };
}

/**
 * FLOTILLA_ARTIFACT_STORE, `db` or `dir`. Default: `db` on PostgreSQL, so every node serves every
 * upload, unless FLOTILLA_ARTIFACT_DIR names a (shared) directory; `dir` on the embedded PGlite.
 */
function artifactStore(env: Env, databaseUrl: string | undefined): ArtifactStoreKind {
  const text = setting(env, "FLOTILLA_ARTIFACT_STORE");
  if (text === undefined) {
    return databaseUrl && setting(env, "FLOTILLA_ARTIFACT_DIR") === undefined ? "db" : "dir";
  }
  if (!(ARTIFACT_STORES as readonly string[]).includes(text)) {
    throw new ConfigError(
      `Invalid FLOTILLA_ARTIFACT_STORE: "${text}" is not db (PostgreSQL) or dir (a directory)`,
    );
  }
  // PGlite runs one transaction at a time: an upload's would hold every other write until it ends.
  if (text === "db" && databaseUrl === undefined) {
    throw new ConfigError(
      "Invalid FLOTILLA_ARTIFACT_STORE: db needs DATABASE_URL (PostgreSQL); the embedded database keeps artifacts in a directory (dir)",
    );
  }
  return text as ArtifactStoreKind;
}
