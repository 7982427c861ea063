/** The brokers transport tests run against: embedded aedes always, Mosquitto when configured. */
import { startEmbeddedBroker } from "../../mqtt/mod.ts";

/** A broker for one test. */
export interface TestBroker {
  url: string;
  /** Stops it when the test started it. */
  close(): Promise<void>;
}

/** A kind of broker a test runs against. */
export interface BrokerCase {
  name: string;
  /** MQTT protocol level flotilla ends up speaking to it. */
  protocolVersion: 4 | 5;
  start(): Promise<TestBroker>;
}

const EXTERNAL = Deno.env.get("FLOTILLA_TEST_MQTT_URL");
/** RabbitMQ's MQTT plugin (3.1.1 only; no shared subscriptions), which .ci/run enables. */
export const RABBITMQ_MQTT_URL = Deno.env.get("FLOTILLA_TEST_RABBITMQ_MQTT_URL");

/**
 * The embedded broker on an ephemeral port, the external one when `FLOTILLA_TEST_MQTT_URL` is set
 * and RabbitMQ's MQTT plugin when `FLOTILLA_TEST_RABBITMQ_MQTT_URL` is.
 */
export const BROKERS: BrokerCase[] = [
  {
    name: "embedded aedes",
    protocolVersion: 4,
    start: () => startEmbeddedBroker({ port: 0 }),
  },
  ...(EXTERNAL
    ? [{
      name: "external broker",
      protocolVersion: 5 as const,
      start: () => Promise.resolve({ url: EXTERNAL, close: () => Promise.resolve() }),
    }]
    : []),
  ...(RABBITMQ_MQTT_URL
    ? [{
      name: "RabbitMQ MQTT plugin",
      // It closes an MQTT 5 CONNECT without a CONNACK; flotilla falls back to 3.1.1.
      protocolVersion: 4 as const,
      start: () => Promise.resolve({ url: RABBITMQ_MQTT_URL, close: () => Promise.resolve() }),
    }]
    : []),
];

/** Resolves once `condition` holds (checked every 5 ms); rejects after `ms`. */
export async function waitUntil(
  condition: () => boolean,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves with `promise`, or rejects after `ms`. */
export async function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One logged event. */
export interface LoggedEvent {
  level: string;
  event: string;
  fields: Record<string, unknown>;
}

/** A Logger that records events and lets a test await the next one with a given name. */
export function recordingLogger() {
  const events: LoggedEvent[] = [];
  const waiters: { event: string; resolve: (e: LoggedEvent) => void }[] = [];
  function emit(level: string, event: string, fields: Record<string, unknown> = {}): void {
    const logged = { level, event, fields };
    events.push(logged);
    const index = waiters.findIndex((w) => w.event === event);
    if (index >= 0) waiters.splice(index, 1)[0]!.resolve(logged);
  }
  return {
    events,
    info: (event: string, fields?: Record<string, unknown>) => emit("info", event, fields),
    warn: (event: string, fields?: Record<string, unknown>) => emit("warn", event, fields),
    error: (event: string, fields?: Record<string, unknown>) => emit("error", event, fields),
    /** The next `event` logged from now on. */
    next(event: string): Promise<LoggedEvent> {
      const { promise, resolve } = Promise.withResolvers<LoggedEvent>();
      waiters.push({ event, resolve });
      return within(promise, `log event "${event}"`);
    },
  };
}
