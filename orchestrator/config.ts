/** The service's settings, read from the environment with the defaults of `deno task start`. */
import { join, resolve } from "node:path";

/** Everything `serve` can be told. */
export interface ServiceConfig {
  dataDir: string;
  /** PostgreSQL URL; unset means embedded PGlite under `dataDir`. */
  databaseUrl?: string;
  /** External broker; unset means the embedded one on `mqttPort`. */
  mqttUrl?: string;
  mqttPort: number;
  mqttCa?: string;
  mqttCert?: string;
  mqttKey?: string;
  /** PEM file of the server's Ed25519 key; unset means `<dataDir>/server.key`, made on first start. */
  serverKeyFile?: string;
  policyDir: string;
  host: string;
  port: number;
  /** Base URL devices fetch artifacts from; default from host, port and TLS. */
  publicUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  adminToken?: string;
  maxArtifactBytes: number;
  maxJsonBytes: number;
}

/** A setting that cannot be used; one line naming the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function port(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ConfigError(`Invalid ${name}: "${text}" is not a port number (0 to 65535)`);
  }
  return value;
}

function size(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`Invalid ${name}: "${text}" is not a positive number of bytes`);
  }
  return value;
}

/** Reads the settings from `env` (default: the process environment). */
export function readConfig(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): ServiceConfig {
  const dataDir = resolve(env.FLOTILLA_DATA_DIR || "./data");
  const tlsCert = env.FLOTILLA_TLS_CERT || undefined;
  const tlsKey = env.FLOTILLA_TLS_KEY || undefined;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError(
      "Invalid TLS settings: set both FLOTILLA_TLS_CERT and FLOTILLA_TLS_KEY, or neither",
    );
  }
  const adminToken = env.FLOTILLA_ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError("Invalid FLOTILLA_ADMIN_TOKEN: it must be at least 16 characters");
  }
  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError("Invalid DATABASE_URL: expected postgres://…");
  }
  const mqttUrl = env.MQTT_URL || undefined;
  if (mqttUrl !== undefined && !/^mqtts?:\/\//.test(mqttUrl)) {
    throw new ConfigError("Invalid MQTT_URL: expected mqtt://… or mqtts://…");
  }
  return {
    dataDir,
    databaseUrl,
    mqttUrl,
    mqttPort: port(env, "FLOTILLA_MQTT_PORT", 1883),
    mqttCa: env.FLOTILLA_MQTT_CA || undefined,
    mqttCert: env.FLOTILLA_MQTT_CERT || undefined,
    mqttKey: env.FLOTILLA_MQTT_KEY || undefined,
    serverKeyFile: env.FLOTILLA_SERVER_KEY || undefined,
    policyDir: resolve(env.FLOTILLA_POLICY_DIR || "./policies"),
    host: env.FLOTILLA_HOST || "127.0.0.1",
    port: port(env, "PORT", 8080),
    publicUrl: env.FLOTILLA_PUBLIC_URL?.replace(/\/+$/, "") || undefined,
    tlsCert,
    tlsKey,
    adminToken,
    maxArtifactBytes: size(env, "FLOTILLA_MAX_ARTIFACT_BYTES", 1024 ** 3),
    maxJsonBytes: size(env, "FLOTILLA_MAX_JSON_BYTES", 64 * 1024 ** 2),
  };
}

/** Where uploaded artifacts live. */
export function artifactDir(config: ServiceConfig): string {
  return join(config.dataDir, "artifacts");
}
