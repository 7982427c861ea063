/** One device agent on its own MQTT connection: what `device run` starts. */
import type { MqttConnection, MqttConnectOptions } from "../mqtt/connection.ts";
import { connectMqtt } from "../mqtt/connection.ts";
import { deviceClientId } from "../mqtt/topics.ts";
import { type Logger, silentLogger } from "../obs/log.ts";
import { createDeviceAgent, type DeviceAgent, type DeviceAgentOptions } from "./agent.ts";
import { lockDeviceDir } from "./dir_lock.ts";
import { FileDeviceStore } from "./file_store.ts";
import { type DeviceIdentity, fileKeyStore, loadIdentity } from "./identity.ts";

/** Options for {@linkcode startDevice}. */
export interface StartDeviceOptions
  extends
    Omit<MqttConnectOptions, "onMessage" | "clientId" | "clean">,
    Pick<
      DeviceAgentOptions,
      | "serverId"
      | "allowHttp"
      | "fetch"
      | "clock"
      | "limits"
      | "releaseKeys"
      | "hardware"
      | "trustClock"
    > {
  /** The provisioned device directory. */
  dir: string;
  /** The server's raw Ed25519 public key. */
  serverKey: Uint8Array;
  /** `mqtt://` or `mqtts://` URL of the broker. */
  broker: string;
  logger?: Logger;
}

/** A running device: its agent and connection. */
export interface RunningDevice {
  agent: DeviceAgent;
  connection: MqttConnection;
  /** Disconnects cleanly; the broker keeps the session and queues frames meanwhile. A frame
   * being handled still finishes (its reply is then lost): await `agent.idle()` to wait for it. */
  close(): Promise<void>;
}

/**
 * Loads the device in `dir`, connects with a persistent session and subscribes to its topic.
 * Holds the directory's lock until closed; throws if another agent holds it.
 */
export async function startDevice(options: StartDeviceOptions): Promise<RunningDevice> {
  const identity = await loadIdentity(options.dir);
  const lock = await lockDeviceDir(options.dir);
  try {
    const running = await connectDevice(options, identity);
    return {
      ...running,
      async close() {
        try {
          await running.close();
        } finally {
          lock.release();
        }
      },
    };
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function connectDevice(
  options: StartDeviceOptions,
  identity: DeviceIdentity,
): Promise<RunningDevice> {
  const logger = options.logger ?? silentLogger;
  const { promise: connected, resolve } = Promise.withResolvers<MqttConnection>();
  const agent = await createDeviceAgent({
    ...options,
    deviceId: identity.id,
    privateKey: identity.privateKey,
    store: new FileDeviceStore(options.dir),
    keys: fileKeyStore(options.dir),
    publish: async (topic, frame) => await (await connected).publish(topic, frame),
    logger,
  });
  const connection = await connectMqtt(options.broker, {
    ...options,
    // Stable, so the broker finds the session again and delivers what was queued meanwhile.
    clientId: deviceClientId(identity.id),
    clean: false,
    logger,
    onMessage(topic, payload) {
      if (topic === agent.topic) agent.handleFrame(payload);
    },
  });
  resolve(connection);
  try {
    await connection.subscribe(agent.topic);
  } catch (error) {
    await connection.close();
    throw error;
  }
  logger.info("device.started", { device: identity.id, topic: agent.topic });
  // [SRUP-11.3] A key proposed before a stop (or a crash) and never acknowledged goes again.
  if (agent.pendingKey) await agent.proposeKey();
  return {
    agent,
    connection,
    close: () => connection.close(),
  };
}
