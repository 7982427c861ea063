/**
 * Helpers for cluster tests: nodes as child processes (`main.ts serve`) on one PostgreSQL and one
 * Mosquitto, and a fleet of real device agents in this process that logs what each device saw.
 */
import { join } from "node:path";
import { TEST_DATABASE_URL } from "../db/_postgres.ts";
import { api } from "./_service.ts";
import { createDeviceAgent, type DeviceAgent, MemoryDeviceStore } from "../../device/mod.ts";
import { connectMqtt, type MqttConnection } from "../../mqtt/mod.ts";
import type { Logger } from "../../obs/log.ts";
import {
  ACTIVATE_SUCCESS,
  decodeMessage,
  defaultEd25519,
  toHex,
  UPDATE_SUCCESS,
} from "../../srup/mod.ts";
import { loadServerKey } from "../../orchestrator/server_key.ts";

export const MQTT_URL = Deno.env.get("FLOTILLA_TEST_MQTT_URL");
/** RabbitMQ's MQTT plugin (3.1.1 only, no shared subscriptions), when `.ci/run` found it. */
export const RABBITMQ_MQTT_URL = Deno.env.get("FLOTILLA_TEST_RABBITMQ_MQTT_URL");
export const ADMIN_TOKEN = "cluster-admin-token-0123456789";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Why cluster tests cannot run here (printed), or undefined when they can. */
export const CLUSTER_SKIP: string | undefined = !TEST_DATABASE_URL
  ? "FLOTILLA_TEST_DATABASE_URL is not set"
  : !MQTT_URL
  ? "FLOTILLA_TEST_MQTT_URL is not set"
  : undefined;

if (CLUSTER_SKIP) console.log(`cluster tests skipped: ${CLUSTER_SKIP}`);

/** Why cluster tests over RabbitMQ cannot run here (printed), or undefined when they can. */
export const RABBITMQ_SKIP: string | undefined = !TEST_DATABASE_URL
  ? "FLOTILLA_TEST_DATABASE_URL is not set"
  : !RABBITMQ_MQTT_URL
  ? "FLOTILLA_TEST_RABBITMQ_MQTT_URL is not set"
  : undefined;

if (RABBITMQ_SKIP) console.log(`cluster tests over RabbitMQ skipped: ${RABBITMQ_SKIP}`);

/** A node running as a child process. */
export class Node {
  readonly id: string;
  readonly apiUrl: string;
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[];
  #exited: Promise<Deno.CommandStatus>;

  constructor(id: string, apiUrl: string, child: Deno.ChildProcess, lines: string[]) {
    this.id = id;
    this.apiUrl = apiUrl;
    this.#child = child;
    this.#lines = lines;
    this.#exited = child.status;
  }

  /** Its output so far (stdout and stderr), for a failing assertion's message. */
  get output(): string {
    return this.#lines.join("\n");
  }

  /** Its process id. */
  get pid(): number {
    return this.#child.pid;
  }

  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** SIGKILLs it (if still running) and waits for it to be gone. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Gone already.
    }
    await this.#exited;
  }

  /** SIGTERM: a graceful shutdown. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await this.#exited;
  }

  /** A JSON call to its API as the admin. */
  async api<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    return await api<T>(this, method, path, body, ADMIN_TOKEN);
  }

  /** One metric's value (its first sample), or undefined. */
  async metric(name: string): Promise<number | undefined> {
    const text = await (await fetch(`${this.apiUrl}/metrics`)).text();
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
    return match ? Number(match[1]) : undefined;
  }
}

/** The shared settings of a test cluster: database, broker, server key, policies. */
export interface ClusterEnv {
  root: string;
  databaseUrl: string;
  /** The broker every node (and the fleet) connects to. */
  mqttUrl: string;
  serverKeyFile: string;
  serverKey: Uint8Array;
  policyDir: string;
  leaseTtlMs: number;
}

/**
 * Makes the server key and a policy directory holding `policies` (name to YAML). The nodes use
 * `options.mqttUrl`, by default FLOTILLA_TEST_MQTT_URL.
 */
export async function clusterEnv(
  root: string,
  databaseUrl: string,
  options: { policies: Record<string, string>; leaseTtlMs: number; mqttUrl?: string },
): Promise<ClusterEnv> {
  const key = await loadServerKey({ dataDir: join(root, "key") });
  const policyDir = join(root, "policies");
  await Deno.mkdir(policyDir, { recursive: true });
  for (const [name, text] of Object.entries(options.policies)) {
    await Deno.writeTextFile(join(policyDir, `${name}.yaml`), text);
  }
  return {
    root,
    databaseUrl,
    mqttUrl: options.mqttUrl ?? MQTT_URL!,
    serverKeyFile: key.path,
    serverKey: key.publicKey,
    policyDir,
    leaseTtlMs: options.leaseTtlMs,
  };
}

/** Starts `main.ts serve` as node `id`; resolves once it prints its API address. */
export async function startNode(env: ClusterEnv, id: string): Promise<Node> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "serve"],
    env: {
      FLOTILLA_NODE_ID: id,
      FLOTILLA_LEASE_TTL_MS: String(env.leaseTtlMs),
      DATABASE_URL: env.databaseUrl,
      MQTT_URL: env.mqttUrl,
      FLOTILLA_SERVER_KEY: env.serverKeyFile,
      FLOTILLA_DATA_DIR: join(env.root, id),
      FLOTILLA_POLICY_DIR: env.policyDir,
      FLOTILLA_ADMIN_TOKEN: ADMIN_TOKEN,
      PORT: "0",
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const api = Promise.withResolvers<string>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const match = /^\s+API\s+(\S+)/.exec(line);
        if (match) api.resolve(match[1]!);
      }
    }
  };
  pump(child.stdout).catch(() => {});
  pump(child.stderr).catch(() => {});
  child.status.then((status) =>
    api.reject(new Error(`node ${id} exited (${status.code}): ${lines.join("\n")}`))
  );
  return new Node(id, await api.promise, child, lines);
}

/** One frame a device received, or a RESPONSE it sent, in the order it happened. */
export type DeviceRecord =
  | { kind: "received"; type: string; sequence: bigint; token: string; n: number }
  | { kind: "sent"; token: string; status: number };

/** A device of the fleet and what it saw. */
export interface FleetDevice {
  id: string;
  publicKey: string;
  agent: DeviceAgent;
  log: DeviceRecord[];
  /** Times it switched to a new artifact (`activate.switched`). */
  switches: number;
  /** Frames it dropped as replays (a sequence id not above its last). */
  replays: number;
}

/** Real device agents on one MQTT connection, each logging what it received and sent. */
export class Fleet {
  readonly devices: FleetDevice[];
  readonly #connection: MqttConnection;
  readonly #counter: { count: number };

  private constructor(
    devices: FleetDevice[],
    connection: MqttConnection,
    counter: { count: number },
  ) {
    this.devices = devices;
    this.#connection = connection;
    this.#counter = counter;
  }

  static async start(
    count: number,
    options: {
      serverKey: Uint8Array;
      mqttUrl: string;
      /** Called with every frame a device receives (not its RESPONSEs), as it arrives. */
      onFrame?: (record: DeviceRecord & { kind: "received" }) => void;
    },
  ): Promise<Fleet> {
    const ed = await defaultEd25519();
    // Frames received by the whole fleet so far: a frame's `n` orders it among all of them.
    const fleet = { count: 0 };
    const byTopic = new Map<string, FleetDevice>();
    const devices: FleetDevice[] = [];
    // Set once the agents exist: their publish callbacks reach it through here.
    const wire: { connection?: MqttConnection } = {};
    for (let i = 0; i < count; i++) {
      const seed = crypto.getRandomValues(new Uint8Array(32));
      const id = crypto.randomUUID();
      const device = { id, log: [], switches: 0, replays: 0 } as unknown as FleetDevice;
      device.publicKey = (await ed.getPublicKey(seed)).toBase64();
      const logger: Logger = {
        info(event) {
          if (event === "activate.switched") device.switches++;
        },
        warn() {},
        error() {},
      };
      device.agent = await createDeviceAgent({
        deviceId: id,
        privateKey: seed,
        serverKey: options.serverKey,
        store: new MemoryDeviceStore({ keepBytes: false }),
        logger,
        publish: async (topic, frame) => {
          const message = decodeMessage(frame);
          if (message.type === "response") {
            device.log.push({ kind: "sent", token: toHex(message.token), status: message.status });
          }
          await wire.connection!.publish(topic, frame);
        },
      });
      devices.push(device);
      byTopic.set(device.agent.topic, device);
    }
    const connection = await connectMqtt(options.mqttUrl, {
      clientId: `flotilla-cluster-fleet-${crypto.randomUUID().slice(0, 8)}`,
      clean: true,
      maxPending: 1_000_000,
      onMessage(topic, payload) {
        const device = byTopic.get(topic);
        if (!device) return;
        const frame = payload.slice();
        try {
          const message = decodeMessage(frame);
          if (message.type !== "response") {
            const record = {
              kind: "received" as const,
              type: message.type,
              sequence: message.sequence ?? 0n,
              token: toHex(message.token),
              n: fleet.count++,
            };
            device.log.push(record);
            options.onFrame?.(record);
          }
        } catch {
          // The agent counts it.
        }
        device.agent.handleFrame(frame).then(() => {
          device.replays = device.agent.rejections.toJSON().replay ?? 0;
        });
      },
    });
    wire.connection = connection;
    for (let i = 0; i < devices.length; i += 500) {
      await Promise.all(devices.slice(i, i + 500).map((d) => connection.subscribe(d.agent.topic)));
    }
    return new Fleet(devices, connection, fleet);
  }

  /** Frames the whole fleet has received so far: a mark for {@linkcode framesSince}. */
  received(): number {
    return this.#counter.count;
  }

  /** Frames received after `mark`, in no particular order. */
  framesSince(mark: number): (DeviceRecord & { kind: "received" })[] {
    return this.devices.flatMap((d) =>
      d.log.filter((r): r is DeviceRecord & { kind: "received" } =>
        r.kind === "received" && r.n >= mark
      )
    );
  }

  /** The lowest sequence id among frames received after `mark`; undefined before any. */
  lowestSince(mark: number): bigint | undefined {
    let lowest: bigint | undefined;
    for (const frame of this.framesSince(mark)) {
      if (lowest === undefined || frame.sequence < lowest) lowest = frame.sequence;
    }
    return lowest;
  }

  /** Devices that confirmed an activation (sent 0x10). */
  activated(): number {
    return this.devices.filter((d) =>
      d.log.some((r) => r.kind === "sent" && r.status === ACTIVATE_SUCCESS)
    ).length;
  }

  /** Every broken promise in the devices' own logs, as lines (empty when none). */
  violations(): string[] {
    const found: string[] = [];
    for (const device of this.devices) {
      let last = -1n;
      const verified = new Set<string>();
      let confirmed = false;
      for (const record of device.log) {
        if (record.kind === "sent") {
          if (record.status === UPDATE_SUCCESS) verified.add(record.token);
          if (record.status === ACTIVATE_SUCCESS) confirmed = true;
          continue;
        }
        if (record.sequence <= last) {
          found.push(`${device.id}: ${record.type} sequence ${record.sequence} after ${last}`);
        }
        last = record.sequence;
        if (record.type === "activate" && !verified.has(record.token)) {
          found.push(`${device.id}: ACTIVATE for ${record.token} without its verified 0x00`);
        }
        if (record.type === "initiate" && confirmed) {
          found.push(`${device.id}: INITIATE after its confirmed activation`);
        }
      }
      if (device.switches !== 1) found.push(`${device.id}: activated ${device.switches} times`);
      if (device.replays !== 0) found.push(`${device.id}: ${device.replays} replays dropped`);
    }
    return found;
  }

  async close(): Promise<void> {
    await this.#connection.close();
  }
}

/** Serves `bytes` at /fw.bin on an ephemeral loopback port, as an external artifact host. */
export function serveArtifact(bytes: Uint8Array): { url: string; close(): Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(bytes as Uint8Array<ArrayBuffer>),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/fw.bin`,
    close: () => server.shutdown(),
  };
}

/** Polls `check` every 100 ms until it returns a value, or throws `why()` after `ms`. */
export async function until<T>(
  check: () => Promise<T | undefined> | T | undefined,
  ms: number,
  why: () => string | Promise<string>,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up after ${ms} ms: ${await why()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
