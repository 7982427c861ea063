/**
 * The device side of a live simulation: real device agents with in-memory stores on real MQTT,
 * faults injected through each agent's fetch and by withholding or delaying its frames.
 */
import { createDeviceAgent, type DeviceAgent, MemoryDeviceStore } from "../device/mod.ts";
import { connectMqtt, deviceClientId, type MqttConnection } from "../mqtt/mod.ts";
import {
  ACTIVATE_SUCCESS,
  decodeMessage,
  UPDATE_FAIL_DIGEST,
  UPDATE_FAIL_FILE,
  UPDATE_FAIL_HTTP_ERROR,
  UPDATE_FAIL_SERVER,
  UPDATE_SUCCESS,
} from "../srup/mod.ts";
import {
  activateOutcome,
  type FaultMix,
  initiateOutcome,
  latency,
  type LatencyRange,
} from "./faults.ts";
import { stream } from "./random.ts";

/** What one worker simulates. */
export interface FleetOptions {
  ids: string[];
  /** Ed25519 seeds, 32 bytes per device. */
  seeds: Uint8Array;
  /** The server's raw Ed25519 public key. */
  serverKey: Uint8Array;
  serverId: string;
  mqttUrl: string;
  /** One connection for all devices (true) or one per device. */
  gateway: boolean;
  faults: FaultMix;
  latency: LatencyRange | null;
  /** Fraction of devices that miss every frame for `offlineMs` from the start. */
  offline: number;
  offlineMs: number;
  /** Fraction of devices that crash during their first download and restart after `restartMs`. */
  crash: number;
  restartMs: number;
  seed: number;
  /** Names this worker's random streams, so workers draw differently. */
  name: string;
}

/** What happened on the device side; times are epoch milliseconds, 0 for never. */
export interface FleetResults {
  /** When each device first received an INITIATE. */
  initiatedAt: Float64Array;
  /** When each device first confirmed an activation (RESPONSE 0x10). */
  activatedAt: Float64Array;
  /** INITIATE frames each device received. */
  attempts: Uint16Array;
  /** Faults injected, by kind. */
  injected: Record<string, number>;
  /** Frames the agents dropped, by reason. */
  rejected: Record<string, number>;
}

interface SimDevice {
  index: number;
  agent: DeviceAgent;
  store: MemoryDeviceStore;
  /** Bumped on a crash: replies of an older agent are never sent. */
  generation: number;
  /** The status the next download is made to end with. */
  outcome: number;
  offlineUntil: number;
  /** Crashes during its next download; set once, for the crash fraction. */
  crashes: boolean;
  down: boolean;
}

const CONNECT_BATCH = 50;
const SUBSCRIBE_BATCH = 500;

/** A running fleet; see {@linkcode startFleet}. */
export interface Fleet {
  /** When connecting began and ended (epoch ms), after the agents were made. */
  readonly connecting: { from: number; to: number };
  results(): FleetResults;
  close(): Promise<void>;
}

/** Creates the agents, connects them and subscribes their topics; resolves when all are ready. */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const count = options.ids.length;
  const initiatedAt = new Float64Array(count);
  const activatedAt = new Float64Array(count);
  const attempts = new Uint16Array(count);
  const injected: Record<string, number> = {};
  const draw = stream(options.seed, `${options.name}/faults`);
  const delay = stream(options.seed, `${options.name}/latency`);
  const pick = stream(options.seed, `${options.name}/devices`);
  const started = Date.now();
  const byTopic = new Map<string, SimDevice>();
  const connections: MqttConnection[] = [];
  let gateway: MqttConnection | undefined;
  const perDevice: (MqttConnection | undefined)[] = [];

  function inject(kind: string): void {
    injected[kind] = (injected[kind] ?? 0) + 1;
  }

  function publisher(device: SimDevice, generation: number) {
    return async (topic: string, frame: Uint8Array) => {
      if (generation !== device.generation) return;
      const connection = gateway ?? perDevice[device.index];
      if (!connection) return;
      try {
        const message = decodeMessage(frame);
        if (message.type === "response" && message.status === ACTIVATE_SUCCESS) {
          if (activatedAt[device.index] === 0) activatedAt[device.index] = Date.now();
        }
      } catch {
        // The agent encoded it: a frame it cannot decode would be a codec bug, seen elsewhere.
      }
      await connection.publish(topic, frame);
    };
  }

  function fetcher(device: SimDevice) {
    return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
      const outcome = device.outcome;
      device.outcome = UPDATE_SUCCESS;
      if (device.crashes) {
        device.crashes = false;
        crash(device);
      }
      switch (outcome) {
        case UPDATE_FAIL_HTTP_ERROR:
          return new Response("injected fault", { status: 500 });
        case UPDATE_FAIL_SERVER:
          throw new TypeError("Connection refused (injected fault)");
        case UPDATE_FAIL_FILE:
          return new Response("injected fault", { status: 404 });
        case UPDATE_FAIL_DIGEST: {
          const bytes = new Uint8Array(await (await fetch(input, init)).arrayBuffer());
          if (bytes.length > 0) bytes[0]! ^= 0xff;
          return new Response(bytes);
        }
      }
      return await fetch(input, init);
    };
  }

  async function createAgent(device: SimDevice): Promise<DeviceAgent> {
    const i = device.index;
    return await createDeviceAgent({
      deviceId: options.ids[i]!,
      privateKey: options.seeds.subarray(i * 32, i * 32 + 32),
      serverKey: options.serverKey,
      serverId: options.serverId,
      store: device.store,
      publish: publisher(device, device.generation),
      fetch: fetcher(device) as typeof fetch,
    });
  }

  /** The agent dies mid-download: its reply is lost; a new one starts from the same store later. */
  function crash(device: SimDevice): void {
    inject("crash");
    device.generation++;
    device.down = true;
    setTimeout(async () => {
      device.agent = await createAgent(device);
      device.down = false;
      inject("restart");
    }, options.restartMs);
  }

  function deliver(device: SimDevice, payload: Uint8Array): void {
    let type: string;
    try {
      type = decodeMessage(payload).type;
    } catch {
      type = "invalid";
    }
    if (type === "initiate") {
      attempts[device.index]!++;
      if (initiatedAt[device.index] === 0) initiatedAt[device.index] = Date.now();
    }
    if (device.down) return inject("down");
    if (Date.now() < device.offlineUntil) return inject("offline");
    if (type === "initiate") {
      const outcome = initiateOutcome(options.faults, draw());
      if (outcome === null) return inject("timeout");
      if (outcome !== UPDATE_SUCCESS) inject(`0x${outcome.toString(16)}`);
      device.outcome = outcome;
    } else if (type === "activate" && activateOutcome(options.faults, draw()) === null) {
      return inject("timeout");
    }
    // The payload is copied: the frame outlives this callback when delayed.
    const frame = payload.slice();
    const ms = options.latency ? latency(options.latency, delay()) : 0;
    if (ms > 0) setTimeout(() => device.agent.handleFrame(frame), ms);
    else device.agent.handleFrame(frame);
  }

  function onMessage(topic: string, payload: Uint8Array): void {
    const device = byTopic.get(topic);
    if (device) deliver(device, payload);
  }

  const devices: SimDevice[] = [];
  for (let index = 0; index < count; index++) {
    const device = {
      index,
      store: new MemoryDeviceStore({ keepBytes: false }),
      generation: 0,
      outcome: UPDATE_SUCCESS,
      offlineUntil: pick() < options.offline ? started + options.offlineMs : 0,
      crashes: pick() < options.crash,
      down: false,
    } as SimDevice;
    device.agent = await createAgent(device);
    devices.push(device);
    byTopic.set(device.agent.topic, device);
  }

  const connectFrom = Date.now();
  try {
    if (options.gateway) {
      gateway = await connectMqtt(options.mqttUrl, {
        clientId: `flotilla-sim-${options.name}-${crypto.randomUUID().slice(0, 8)}`,
        clean: true,
        maxPending: 1_000_000,
        onMessage,
      });
      connections.push(gateway);
      const connection = gateway;
      await inBatches(devices, SUBSCRIBE_BATCH, (d) => connection.subscribe(d.agent.topic));
    } else {
      await inBatches(devices, CONNECT_BATCH, async (device) => {
        const connection = await connectMqtt(options.mqttUrl, {
          // The agent's own client id, so the embedded broker's presence shows the device online.
          clientId: deviceClientId(options.ids[device.index]!),
          clean: true,
          onMessage,
        });
        connections.push(connection);
        perDevice[device.index] = connection;
        await connection.subscribe(device.agent.topic);
      });
    }
  } catch (error) {
    await Promise.allSettled(connections.map((c) => c.close()));
    throw error;
  }

  const connecting = { from: connectFrom, to: Date.now() };

  return {
    connecting,
    results() {
      const rejected: Record<string, number> = {};
      for (const device of devices) {
        for (const [reason, n] of Object.entries(device.agent.rejections.toJSON())) {
          rejected[reason] = (rejected[reason] ?? 0) + (n ?? 0);
        }
      }
      return { initiatedAt, activatedAt, attempts, injected, rejected };
    },
    async close() {
      await Promise.allSettled(connections.map((c) => c.close()));
    },
  };
}

async function inBatches<T>(items: T[], size: number, run: (item: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += size) {
    await Promise.all(items.slice(i, i + size).map(run));
  }
}
