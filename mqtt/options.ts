/** npm:mqtt client options from a broker URL and the operator's TLS files. */
import type { IClientOptions } from "mqtt";

/** Connection settings shared by the orchestrator and the device agent. */
export interface MqttClientSettings {
  /** Stable client id; required for a persistent session to be found again. */
  clientId?: string;
  /** Start a fresh session; false (default) keeps subscriptions and queued QoS 1 messages. */
  clean?: boolean;
  /** MQTT 5: how long the broker keeps a persistent session after a disconnect, in seconds. */
  sessionExpirySeconds?: number;
  /** PEM file of the CA that signed the broker's certificate (mqtts). */
  caFile?: string;
  /** PEM file of this client's certificate, for brokers that require client certificates. */
  certFile?: string;
  /** PEM file of this client's private key. */
  keyFile?: string;
  /** Keepalive in seconds. */
  keepaliveSeconds?: number;
  /** How long to wait for the broker's CONNACK, in milliseconds. */
  connectTimeoutMs?: number;
  /** First reconnect delay in milliseconds; doubles on each failed attempt. */
  reconnectMinMs?: number;
  /** Ceiling of the reconnect delay in milliseconds. */
  reconnectMaxMs?: number;
}

// Short enough to notice a dead link within a minute, long enough for sleepy cellular links.
const DEFAULT_KEEPALIVE_SECONDS = 30;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_RECONNECT_MIN_MS = 500;
const DEFAULT_RECONNECT_MAX_MS = 30_000;
// MQTT 5 ends a session at disconnect unless told otherwise; 0xFFFFFFFF means never, which is
// what 3.1.1 does with clean session off. Brokers may cap it (Mosquitto: persistent_client_expiration).
const NEVER_EXPIRES = 0xffff_ffff;

/** Resolved reconnect backoff bounds. */
export interface Backoff {
  minMs: number;
  maxMs: number;
}

/** The backoff bounds of `settings`, checked. */
export function backoffOf(settings: MqttClientSettings): Backoff {
  const minMs = settings.reconnectMinMs ?? DEFAULT_RECONNECT_MIN_MS;
  const maxMs = settings.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS;
  if (!(minMs > 0) || !(maxMs >= minMs)) {
    throw new RangeError(`Invalid reconnect backoff: ${minMs} to ${maxMs} ms`);
  }
  return { minMs, maxMs };
}

/** Checks that `url` names an MQTT broker (`mqtt://` or `mqtts://`) and returns it parsed. */
export function parseBrokerUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`Invalid broker URL: "${url}"`);
  }
  if (parsed.protocol !== "mqtt:" && parsed.protocol !== "mqtts:") {
    throw new TypeError(`Invalid broker URL: "${url}" must start with mqtt:// or mqtts://`);
  }
  if (!parsed.hostname) throw new TypeError(`Invalid broker URL: "${url}" has no host`);
  return parsed;
}

/** npm:mqtt options for `url`: QoS 1 friendly, persistent by default, TLS files read. */
export async function mqttClientOptions(
  url: string,
  settings: MqttClientSettings = {},
): Promise<IClientOptions> {
  const parsed = parseBrokerUrl(url);
  const tlsFiles = [settings.caFile, settings.certFile, settings.keyFile].some(Boolean);
  if (tlsFiles && parsed.protocol !== "mqtts:") {
    throw new TypeError(`Invalid broker URL: "${url}" must use mqtts:// with CA or client files`);
  }
  if (Boolean(settings.certFile) !== Boolean(settings.keyFile)) {
    throw new TypeError(
      "Invalid TLS settings: a client certificate needs its key, and the reverse",
    );
  }
  const options: IClientOptions = {
    clientId: settings.clientId ?? `flotilla-${crypto.randomUUID()}`,
    clean: settings.clean ?? false,
    keepalive: settings.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
    connectTimeout: settings.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    reconnectPeriod: backoffOf(settings).minMs,
    // A refused CONNACK (broker overloaded, ACL being fixed) is retried like a lost connection.
    reconnectOnConnackError: true,
    // MqttConnection subscribes again on every connect; npm:mqtt would skip a present session.
    resubscribe: false,
  };
  if (!options.clean) {
    // Sent only on MQTT 5 connections; npm:mqtt leaves properties out of a 3.1.1 CONNECT.
    options.properties = {
      sessionExpiryInterval: settings.sessionExpirySeconds ?? NEVER_EXPIRES,
    };
  }
  if (settings.caFile) options.ca = await readPem(settings.caFile, "CA");
  if (settings.certFile) options.cert = await readPem(settings.certFile, "client certificate");
  if (settings.keyFile) options.key = await readPem(settings.keyFile, "client key");
  return options;
}

async function readPem(path: string, title: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`Cannot read ${title} file "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}
