/**
 * The orchestrator a live simulation drives: a running one over its API, or one started in this
 * process by the function the composition root hands in (sim/ does not import app/).
 */
import { fromBase64 } from "../srup/mod.ts";

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

/** How to start an orchestrator in this process. */
export interface LocalTargetOptions {
  /** Environment read for the service (FLOTILLA_DATA_DIR, MQTT_URL, ...). */
  env: Record<string, string | undefined>;
  /** Policy time runs this many times faster. */
  speed?: number;
  /** The data directory when the environment names none. */
  dataDir: string;
}

/** Starts an orchestrator in this process on ephemeral ports (app/'s `startSimTarget`). */
export type StartLocalTarget = (options: LocalTargetOptions) => Promise<SimTarget>;

/** Options of {@linkcode connectTarget}. */
export interface TargetOptions extends Omit<LocalTargetOptions, "env"> {
  /** A running orchestrator; unset starts one in-process with `startLocal`. */
  api?: { url: string; token: string };
  env?: Record<string, string | undefined>;
  startLocal?: StartLocalTarget;
}

/** The parts of the API's rollout JSON the simulation reads. */
export interface RolloutJson {
  id: string;
  state: string;
  stage: number;
  stages: {
    percent: number;
    devices: number;
    pending: number;
    received: number;
    activated: number;
    failed: number;
    cancelled: number;
  }[] | null;
  counts: Record<string, number>;
  devices: number;
  haltReason: Record<string, unknown> | null;
  pauseReason: Record<string, unknown> | null;
  policy: { name: string; sha256: string; commit: string | null };
}

/** Reads a running orchestrator's settings, or starts one in-process with `startLocal`. */
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
  if (!options.startLocal) {
    throw new SimApiError("Cannot start an orchestrator in this process: give its API url instead");
  }
  return await options.startLocal({
    env: options.env ?? Deno.env.toObject(),
    speed: options.speed,
    dataDir: options.dataDir,
  });
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
