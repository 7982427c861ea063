/** The orchestrator a live simulation drives: started in-process, or a running one over its API. */
import { readConfig } from "../orchestrator/config.ts";
import { scaledClock } from "../orchestrator/clock.ts";
import { startService } from "../app/service.ts";
import { fromBase64, toBase64 } from "../srup/mod.ts";

/** An API call that did not answer as expected. */
export class SimApiError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SimApiError";
  }
}

/** What the simulation needs to know of the orchestrator. */
export interface SimTarget {
  apiUrl: string;
  token: string;
  mqttUrl: string;
  serverId: string;
  /** The server's raw Ed25519 public key. */
  serverKey: Uint8Array;
  /** Set when the orchestrator runs in this process. */
  close?: () => Promise<void>;
}

/** Options of {@linkcode connectTarget}. */
export interface TargetOptions {
  /** A running orchestrator; unset starts one in-process. */
  api?: { url: string; token: string };
  /** In-process only: environment read for the service (FLOTILLA_DATA_DIR, MQTT_URL, ...). */
  env?: Record<string, string | undefined>;
  /** In-process only: policy time runs this many times faster. */
  speed?: number;
  /** In-process only: the data directory when the environment names none. */
  dataDir: string;
}

/** Starts the in-process orchestrator on ephemeral ports, or reads a running one's settings. */
export async function connectTarget(options: TargetOptions): Promise<SimTarget> {
  if (options.api) {
    const base = options.api.url.replace(/\/+$/, "");
    const server = await apiCall<{ serverId: string; publicKey: string; mqtt: { url: string } }>(
      base,
      options.api.token,
      "GET",
      "/v1/server",
    );
    return {
      apiUrl: base,
      token: options.api.token,
      mqttUrl: server.mqtt.url,
      serverId: server.serverId,
      serverKey: fromBase64(server.publicKey),
    };
  }
  const token = toBase64(crypto.getRandomValues(new Uint8Array(24)));
  const env = options.env ?? Deno.env.toObject();
  const config = readConfig({
    ...env,
    FLOTILLA_DATA_DIR: env.FLOTILLA_DATA_DIR || options.dataDir,
    FLOTILLA_ADMIN_TOKEN: token,
    PORT: "0",
    FLOTILLA_MQTT_PORT: "0",
  });
  const service = await startService(config, {
    log: () => {},
    clock: options.speed && options.speed > 1 ? scaledClock(options.speed) : undefined,
  });
  return {
    apiUrl: service.apiUrl,
    token,
    mqttUrl: service.mqttUrl,
    serverId: service.serverId,
    serverKey: fromBase64(service.publicKey),
    close: () => service.close(),
  };
}

/** One JSON call; the parsed body, or a SimApiError naming the status and the API's error. */
export async function apiCall<T>(
  base: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  accept: number[] = [200, 201],
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new SimApiError(`Cannot reach the API at "${base}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  const text = await response.text();
  if (!accept.includes(response.status)) {
    throw new SimApiError(`${method} ${path} answered ${response.status}: ${text.slice(0, 500)}`);
  }
  return (text ? JSON.parse(text) : null) as T;
}
