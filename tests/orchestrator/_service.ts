/** Helpers for tests that run the whole service with real device agents. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readConfig } from "../../orchestrator/config.ts";
import { type Clock, scaledClock } from "../../io/clock.ts";
import type { HeapUsage } from "../../orchestrator/heap_budget.ts";
import { type Service, startService } from "../../app/service.ts";
import { provisionDevice, type RunningDevice, startDevice } from "../../device/mod.ts";
import { fromBase64 } from "../../srup/mod.ts";

export const ADMIN_TOKEN = "test-admin-token-0123456789";
export const POLICY_DIR = new URL("../../policies", import.meta.url).pathname;

/**
 * Starts the service on ephemeral ports in a temp data dir; policy time runs `speed` times faster,
 * or on `clock` (a SimClock: time moves only when the test moves it).
 */
export async function startTestService(
  dataDir: string,
  options: {
    speed?: number;
    clock?: Clock;
    env?: Record<string, string>;
    heap?: () => HeapUsage;
    log?: (line: string) => void;
  } = {},
): Promise<Service> {
  const config = readConfig({
    FLOTILLA_DATA_DIR: dataDir,
    FLOTILLA_POLICY_DIR: POLICY_DIR,
    FLOTILLA_ADMIN_TOKEN: ADMIN_TOKEN,
    PORT: "0",
    FLOTILLA_MQTT_PORT: "0",
    ...options.env,
  });
  return await startService(config, {
    log: options.log ?? (() => {}),
    clock: options.clock ?? (options.speed ? scaledClock(options.speed) : undefined),
    heap: options.heap,
  });
}

/** A JSON call to the API of `service` (a service or a node), as the admin by default. */
export async function api<T = Record<string, unknown>>(
  service: Pick<Service, "apiUrl">,
  method: string,
  path: string,
  body?: unknown,
  token = ADMIN_TOKEN,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${service.apiUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Uploads bytes as an artifact; its digest. */
export async function upload(service: Service, bytes: Uint8Array): Promise<string> {
  const response = await fetch(`${service.apiUrl}/v1/artifacts`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/octet-stream" },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  const json = await response.json();
  if (response.status !== 201) throw new Error(`upload failed: ${JSON.stringify(json)}`);
  return json.digest;
}

/** A provisioned, registered and running device agent. */
export interface TestDevice {
  id: string;
  dir: string;
  running: RunningDevice;
}

/** Provisions `count` devices under `root`, registers them and starts their agents. */
export async function startDevices(
  service: Service,
  root: string,
  count: number,
  options: {
    fetchFor?: (index: number) => typeof fetch | undefined;
    tagsFor?: (index: number) => Record<string, string>;
    /** Registered with frame version 3 and run with these release keys ([SRUP-7]). */
    releaseKeys?: Uint8Array[];
  } = {},
): Promise<TestDevice[]> {
  const devices: TestDevice[] = [];
  for (let i = 0; i < count; i++) {
    const dir = join(root, `device-${i}`);
    const identity = await provisionDevice(dir);
    const registered = await api(service, "POST", "/v1/devices", {
      id: identity.id,
      publicKey: identity.publicKey.toBase64(),
      tags: options.tagsFor?.(i) ?? { bench: "e2e" },
      ...(options.releaseKeys ? { frameVersion: 3 } : {}),
    });
    if (registered.status !== 201) {
      throw new Error(`register failed: ${JSON.stringify(registered)}`);
    }
    const running = await startDevice({
      dir,
      serverKey: fromBase64(service.publicKey),
      broker: service.mqttUrl,
      serverId: service.serverId,
      fetch: options.fetchFor?.(i),
      releaseKeys: options.releaseKeys,
    });
    devices.push({ id: identity.id, dir, running });
  }
  return devices;
}

/** Polls a rollout until `done` holds for it, or fails after `ms`. */
export async function waitForRollout(
  service: Service,
  id: string,
  done: (rollout: Record<string, unknown>) => boolean,
  ms = 60_000,
): Promise<Record<string, unknown>> {
  const until = Date.now() + ms;
  let last: Record<string, unknown> = {};
  while (Date.now() < until) {
    last = (await api(service, "GET", `/v1/rollouts/${id}`)).body;
    if (done(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`rollout ${id} did not get there in ${ms} ms: ${JSON.stringify(last)}`);
}

/**
 * Rolls the artifact `digest` out to every device under `policy` (as the API takes it), checks
 * the rollout was created, and waits until it completes: the completed rollout's JSON.
 */
export async function rollOutToAll(
  service: Service,
  digest: string,
  policy: unknown,
): Promise<Record<string, unknown>> {
  const created = await api(service, "POST", "/v1/rollouts", {
    artifact: { digest },
    policy,
    targets: { all: true },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return await waitForRollout(service, created.body.id as string, (r) => r.state === "completed");
}

/** A fetch that flips a byte of any download whose URL ends with `suffix()`: a 0xFF in the making. */
export function corruptingFetch(suffix: () => string): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const match = suffix();
    if (!match || !String(input).endsWith(match)) return response;
    const bytes = new Uint8Array(await response.arrayBuffer());
    bytes[0] = bytes[0]! ^ 0xff;
    return new Response(bytes, { status: response.status, headers: response.headers });
  };
}
