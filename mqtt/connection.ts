/** One MQTT connection: QoS 1, reconnect with backoff, a bounded outbound queue. */
import mqtt, { type MqttClient } from "mqtt";
import { Buffer } from "node:buffer";
import { LatencyHistogram } from "../obs/latency.ts";
import { type Logger, silentLogger } from "../obs/log.ts";
import {
  backoffOf,
  mqttClientOptions,
  type MqttClientSettings,
  parseBrokerUrl,
} from "./options.ts";

/** Options for {@linkcode connectMqtt}. */
export interface MqttConnectOptions extends MqttClientSettings {
  /**
   * 5 or 4 (3.1.1); by default 5, falling back to 4 when the broker refuses it or closes the
   * connection without a CONNACK (RabbitMQ 3.x).
   */
  protocolVersion?: 4 | 5;
  /** Publishes awaiting PUBACK before `publish()` rejects with OutboundQueueFullError. */
  maxPending?: number;
  /** Gives up waiting for the first connection. */
  signal?: AbortSignal;
  /** Registered before connecting, so no message queued in a persistent session is missed. */
  onMessage?: MessageHandler;
  logger?: Logger;
}

/** Called for every message received on a subscribed topic. */
export type MessageHandler = (topic: string, payload: Uint8Array) => void;

/** Called when the connection comes up (true) or goes down (false). */
export type StatusHandler = (connected: boolean) => void;

/** The outbound queue is full: the broker is not acknowledging as fast as messages are sent. */
export class OutboundQueueFullError extends Error {
  readonly limit: number;

  constructor(limit: number) {
    super(`Cannot publish: outbound queue is full (${limit} messages await acknowledgement)`);
    this.name = "OutboundQueueFullError";
    this.limit = limit;
  }
}

/** The broker refused the connection (bad credentials, not authorised, ...). */
export class ConnectionRefusedError extends Error {
  /** The CONNACK return or reason code. */
  readonly code: number;

  constructor(url: string, code: number, options?: ErrorOptions) {
    super(`Cannot connect to MQTT broker "${url}": refused with code ${code}`, options);
    this.name = "ConnectionRefusedError";
    this.code = code;
  }
}

// About 200 bytes per pending SRUP frame: 10,000 is a 2 MB ceiling, ample for a stage's INITIATEs.
const DEFAULT_MAX_PENDING = 10_000;
// MQTT 3.1.1 return code and MQTT 5 reason code for "unsupported protocol version".
const UNACCEPTABLE_PROTOCOL = new Set([1, 0x84]);
const CLOSE_GRACE_MS = 2_000;

/** Connects to `url`, retrying with backoff until the first CONNACK; rejects when refused. */
export async function connectMqtt(
  url: string,
  options: MqttConnectOptions = {},
): Promise<MqttConnection> {
  const base = await mqttClientOptions(url, options);
  const logger = options.logger ?? silentLogger;
  let version = options.protocolVersion ?? 5;
  for (;;) {
    // The connection exists before the CONNACK, so its message handler sees queued messages.
    const client = mqtt.connect(url, {
      ...base,
      protocolVersion: version,
      // Refusals fail fast at start (a misconfiguration); later ones are retried.
      reconnectOnConnackError: false,
    });
    const connection = new MqttConnection(client, { ...options, logger });
    if (options.onMessage) connection.onMessage(options.onMessage);
    const detecting = version === 5 && options.protocolVersion === undefined;
    try {
      await firstConnect(url, client, { ...options, detecting });
      return connection;
    } catch (error) {
      const refused = error instanceof ConnectionRefusedError &&
        UNACCEPTABLE_PROTOCOL.has(error.code);
      if (detecting && (refused || error instanceof UnansweredConnectError)) {
        logger.info("mqtt.protocol_fallback", {
          url: redact(url),
          from: 5,
          to: 4,
          reason: refused ? "refused" : "closed without CONNACK",
        });
        version = 4;
        continue;
      }
      throw error;
    }
  }
}

/**
 * The broker took the connection and closed it without a CONNACK. RabbitMQ 3.x's MQTT plugin
 * answers an MQTT 5 CONNECT so, where a broker that speaks 5 would send a CONNACK, if a refusal.
 */
class UnansweredConnectError extends Error {
  constructor(url: string) {
    super(`Cannot connect to MQTT broker "${url}": it closed the connection without a CONNACK`);
    this.name = "UnansweredConnectError";
  }
}

function firstConnect(
  url: string,
  client: MqttClient,
  options: MqttConnectOptions & { detecting: boolean },
): Promise<void> {
  applyBackoff(client, options);
  // For mqtts the broker has the CONNECT only once TLS is up: a failed handshake is no answer.
  const reachedEvent = parseBrokerUrl(url).protocol === "mqtts:" ? "secureConnect" : "connect";
  let reached = false;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      client.end(true);
      reject(options.signal.reason);
      return;
    }
    function cleanup(): void {
      client.off("connect", onConnect);
      client.off("error", onError);
      client.off("packetsend", onPacketSend);
      client.off("close", onClose);
      options.signal?.removeEventListener("abort", onAbort);
    }
    function watchSocket(): void {
      reached = false;
      client.stream.once(reachedEvent, () => reached = true);
    }
    // Each attempt has a new socket, made just before its CONNECT is written; the first attempt's
    // was made by mqtt.connect(), synchronously before this, so it cannot be up yet.
    function onPacketSend(packet: { cmd: string }): void {
      if (packet.cmd === "connect") watchSocket();
    }
    watchSocket();
    function onClose(): void {
      // A broker that is down never accepts the socket; one that is starting may close it once.
      if (!options.detecting || !reached) return;
      cleanup();
      client.end(true);
      reject(new UnansweredConnectError(redact(url)));
    }
    function onConnect(): void {
      cleanup();
      client.options.reconnectOnConnackError = true;
      resolve();
    }
    function onError(error: Error & { code?: unknown }): void {
      if (typeof error.code === "number") {
        cleanup();
        client.end(true);
        reject(new ConnectionRefusedError(redact(url), error.code, { cause: error }));
      }
      // Network errors are logged by the connection; npm:mqtt retries with the backoff above.
    }
    function onAbort(): void {
      cleanup();
      client.end(true);
      reject(options.signal!.reason);
    }
    client.on("connect", onConnect);
    client.on("error", onError);
    client.on("packetsend", onPacketSend);
    client.on("close", onClose);
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Doubles npm:mqtt's fixed reconnect period after each failed attempt, with jitter. */
function applyBackoff(client: MqttClient, settings: MqttClientSettings): void {
  const { minMs, maxMs } = backoffOf(settings);
  let delay = minMs;
  client.on("reconnect", () => {
    delay = Math.min(maxMs, delay * 2);
    // Jitter spreads a fleet's reconnects after a broker restart.
    client.options.reconnectPeriod = Math.round(delay * (0.5 + Math.random() / 2));
  });
  client.on("connect", () => {
    delay = minMs;
    client.options.reconnectPeriod = minMs;
  });
}

// A persistent session's backlog delivered before anyone listens; beyond this it is dropped (and
// QoS 1 senders retry on their own timeouts).
const EARLY_LIMIT = 100_000;

/** A connected MQTT client; every method is safe to call while it reconnects. */
export class MqttConnection {
  readonly #client: MqttClient;
  readonly #logger: Logger;
  readonly #maxPending: number;
  readonly #handlers = new Set<MessageHandler>();
  /** Filters subscribed to, made again on every reconnect. */
  readonly #filters = new Set<string>();
  readonly #statusHandlers = new Set<StatusHandler>();
  /** Messages that arrived before any handler (a persistent session's backlog), until one does. */
  #early: [string, Uint8Array][] | null = [];
  #pending = 0;
  #closing: Promise<void> | undefined;
  /** Publish to PUBACK times, in milliseconds. */
  readonly latency: LatencyHistogram = new LatencyHistogram();

  /** Wraps a client; use {@linkcode connectMqtt}, which also waits for the first connection. */
  constructor(client: MqttClient, options: Pick<MqttConnectOptions, "maxPending" | "logger">) {
    this.#client = client;
    this.#logger = options.logger ?? silentLogger;
    this.#maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    if (!(this.#maxPending >= 1)) {
      throw new RangeError(`Invalid outbound queue limit: ${this.#maxPending} is below 1`);
    }
    const clientId = client.options.clientId;
    client.on("message", (topic, payload) => {
      if (this.#early) {
        if (this.#early.length < EARLY_LIMIT) this.#early.push([topic, payload]);
        else this.#logger.warn("mqtt.early_dropped", { topic });
        return;
      }
      for (const handler of this.#handlers) {
        try {
          handler(topic, payload);
        } catch (error) {
          this.#logger.error("mqtt.handler_failed", { topic, error: String(error) });
        }
      }
    });
    client.on("connect", (connack) => {
      // npm:mqtt leaves Nagle on: a small PUBACK or RESPONSE then waits for the peer's delayed
      // ACK, about 40 ms per hop. The CONNECT itself went out on a fresh socket, undelayed.
      (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      this.#logger.info("mqtt.connected", { clientId, sessionPresent: connack.sessionPresent });
      // Not only when the session is gone: Mosquitto 2.0.11 with persistence reports the session
      // present after its own restart but has lost the shared subscriptions in it.
      for (const filter of this.#filters) this.#resubscribe(filter);
    });
    let connectedOnce = false;
    client.on("connect", () => connectedOnce = true);
    // Before the first CONNACK, connectMqtt is still trying (or about to fall back to 3.1.1).
    client.on(
      "offline",
      () => this.#logger[connectedOnce ? "warn" : "info"]("mqtt.offline", { clientId }),
    );
    client.on("connect", () => this.#status(true));
    client.on("close", () => this.#status(false));
    client.on("error", (error: Error & { code?: unknown }) => {
      // A broker refusing MQTT 5 is expected: connectMqtt falls back to 3.1.1 and says so at info.
      const fallback = client.options.protocolVersion === 5 &&
        UNACCEPTABLE_PROTOCOL.has(error.code as number);
      this.#logger[fallback ? "info" : "warn"]("mqtt.error", { clientId, error: error.message });
    });
  }

  /** The MQTT protocol level in use: 5, or 4 for 3.1.1. */
  get protocolVersion(): 4 | 5 {
    return this.#client.options.protocolVersion === 5 ? 5 : 4;
  }

  /** Whether the client is connected right now. */
  get connected(): boolean {
    return this.#client.connected;
  }

  /** Publishes sent and not yet acknowledged. */
  get pending(): number {
    return this.#pending;
  }

  /** The client id (a persistent session is keyed by it). */
  get clientId(): string {
    return this.#client.options.clientId!;
  }

  /** Publishes `payload` with QoS 1; resolves on PUBACK, queued while offline. */
  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.#pending >= this.#maxPending) {
      return Promise.reject(new OutboundQueueFullError(this.#maxPending));
    }
    this.#pending++;
    const started = performance.now();
    // A view, not a copy: npm:mqtt keeps it until PUBACK and SRUP frames are never reused.
    const buffer = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    return new Promise((resolve, reject) => {
      this.#client.publish(topic, buffer, { qos: 1 }, (error) => {
        this.#pending--;
        if (error) {
          reject(new Error(`Cannot publish to "${topic}": ${error.message}`, { cause: error }));
          return;
        }
        this.latency.observe(performance.now() - started);
        resolve();
      });
    });
  }

  /** Subscribes to `filter` with QoS 1, and again after every reconnect; rejects when refused. */
  async subscribe(filter: string): Promise<void> {
    // Kept from the start, so a reconnect before the SUBACK subscribes again too.
    this.#filters.add(filter);
    try {
      await this.#subscribe(filter);
    } catch (error) {
      this.#filters.delete(filter);
      throw error;
    }
  }

  async #subscribe(filter: string): Promise<void> {
    const granted = await this.#client.subscribeAsync(filter, { qos: 1 });
    const grant = granted[0];
    if (!grant || grant.qos === 128 || grant.qos > 2) {
      throw new Error(`Cannot subscribe to "${filter}": the broker refused it`);
    }
  }

  #resubscribe(filter: string): void {
    this.#subscribe(filter).then(
      () => this.#logger.info("mqtt.resubscribed", { clientId: this.clientId, filter }),
      // The next reconnect tries again; until then the stall check in the server link notices.
      (error) =>
        this.#logger.error("mqtt.resubscribe_failed", {
          clientId: this.clientId,
          filter,
          error: String(error),
        }),
    );
  }

  /**
   * Calls `handler` for every message received; returns a function that removes it. The first
   * handler also gets the messages that arrived before it, so a session's backlog is not lost.
   */
  onMessage(handler: MessageHandler): () => void {
    this.#handlers.add(handler);
    const early = this.#early;
    this.#early = null;
    for (const [topic, payload] of early ?? []) {
      try {
        handler(topic, payload);
      } catch (error) {
        this.#logger.error("mqtt.handler_failed", { topic, error: String(error) });
      }
    }
    return () => this.#handlers.delete(handler);
  }

  /** Calls `handler` whenever the connection comes up or goes down; returns a function that removes it. */
  onStatus(handler: StatusHandler): () => void {
    this.#statusHandlers.add(handler);
    return () => this.#statusHandlers.delete(handler);
  }

  #status(connected: boolean): void {
    for (const handler of this.#statusHandlers) {
      try {
        handler(connected);
      } catch (error) {
        this.#logger.error("mqtt.handler_failed", { error: String(error) });
      }
    }
  }

  /** Disconnects cleanly (the broker keeps a persistent session); idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const client = this.#client;
    if (!client.connected) {
      await client.endAsync(true);
      return;
    }
    // A graceful end waits for PUBACKs, which never come if the broker has just gone away.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), CLOSE_GRACE_MS);
    });
    const ended = await Promise.race([client.endAsync(), grace]);
    clearTimeout(timer);
    if (ended === "timeout") await client.endAsync(true);
  }
}

/** `url` without its password, for logs. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return url;
  }
}
