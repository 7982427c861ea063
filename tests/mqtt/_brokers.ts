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

/** The embedded broker on an ephemeral port, and the external one when `FLOTILLA_TEST_MQTT_URL` is set. */
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
];

/** Resolves with the value `probe` returns once it is not undefined; rejects after `ms`. */
export async function waitFor<T>(
  probe: () => T | undefined,
  what: string,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
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
