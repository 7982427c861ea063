/**
 * SRUP round trips over MQTT: the server signs and publishes an ACTIVATE, the device agent
 * verifies it and publishes a signed RESPONSE, the server receives and verifies that.
 * Through the embedded aedes broker, and through Mosquitto when one answers
 * (FLOTILLA_BENCH_MQTT_URL, else FLOTILLA_TEST_MQTT_URL, else mqtt://127.0.0.1:1883).
 * Round trips per second = devices / time per iteration.
 */
import { createDeviceAgent, type DeviceAgent, MemoryDeviceStore } from "../device/mod.ts";
import { createSequenceAllocator } from "../io/sequence.ts";
import {
  connectMqtt,
  createServerLink,
  type MqttConnection,
  type ServerLink,
  startEmbeddedBroker,
} from "../mqtt/mod.ts";
import { defaultEd25519, newToken, randomPrivateKey } from "../srup/mod.ts";

const CONCURRENT_DEVICES = 64;
const FIRMWARE = new TextEncoder().encode("bench firmware");
const DIGEST = new Uint8Array(await crypto.subtle.digest("SHA-256", FIRMWARE));

/** A server link and `count` agents sharing one gateway connection, each with an active update. */
async function fleet(url: string, count: number) {
  const serverKey = randomPrivateKey();
  const serverPublic = await (await defaultEd25519()).getPublicKey(serverKey);
  const keys = new Map<string, Uint8Array>();
  const waiting = new Map<string, () => void>();
  let stored = 0n;
  const serverConnection = await connectMqtt(url, { clean: true, maxPending: 100_000 });
  const link: ServerLink = await createServerLink(serverConnection, {
    privateKey: serverKey,
    serverId: newToken().toHex(),
    sequence: createSequenceAllocator({
      load: () => Promise.resolve(stored),
      persist: (upTo) => Promise.resolve(void (stored = upTo)),
      block: 1_000_000n,
    }),
    deviceKey: (id) => Promise.resolve(keys.get(id)),
    onResponse(id) {
      waiting.get(id)?.();
    },
  });
  const agents = new Map<string, DeviceAgent>();
  const gateway: MqttConnection = await connectMqtt(url, {
    clean: true,
    maxPending: 100_000,
    onMessage: (topic, payload) => void agents.get(topic)?.handleFrame(payload),
  });
  const devices: { id: string; token: Uint8Array }[] = [];
  for (let i = 0; i < count; i++) {
    const id = crypto.randomUUID();
    const privateKey = randomPrivateKey();
    keys.set(id, await (await defaultEd25519()).getPublicKey(privateKey));
    const agent = await createDeviceAgent({
      deviceId: id,
      privateKey,
      serverKey: serverPublic,
      serverId: link.serverId,
      store: new MemoryDeviceStore({ keepBytes: false }),
      publish: (topic, frame) => gateway.publish(topic, frame),
      fetch: () => Promise.resolve(new Response(FIRMWARE)),
    });
    agents.set(agent.topic, agent);
    await gateway.subscribe(agent.topic);
    devices.push({ id, token: newToken() });
  }

  function roundTrip(id: string, send: () => Promise<unknown>): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    waiting.set(id, resolve);
    return Promise.all([send(), promise]).then(() => void waiting.delete(id));
  }

  // Stage and activate once, so every later ACTIVATE is the idempotent confirmation path.
  await Promise.all(
    devices.map(({ id, token }) =>
      roundTrip(
        id,
        () => link.sendInitiate(id, { token, url: "https://x.example/f", digest: DIGEST }),
      )
        .then(() => roundTrip(id, () => link.sendActivate(id, { token })))
    ),
  );

  return {
    /** One round trip for each of the first `n` devices, all in flight at once. */
    run(n: number): Promise<unknown> {
      return Promise.all(
        devices.slice(0, n).map(({ id, token }) =>
          roundTrip(id, () => link.sendActivate(id, { token }))
        ),
      );
    },
  };
}

async function answers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  try {
    const connection = await Deno.connect({ hostname, port: Number(port || 1883) });
    connection.close();
    return true;
  } catch {
    return false;
  }
}

const embedded = await startEmbeddedBroker({ port: 0 });
const external = Deno.env.get("FLOTILLA_BENCH_MQTT_URL") ??
  Deno.env.get("FLOTILLA_TEST_MQTT_URL") ?? "mqtt://127.0.0.1:1883";
const brokers: [string, string][] = [["aedes", embedded.url]];
if (await answers(external)) brokers.push(["mosquitto", external]);
else console.error(`mqtt_bench: no broker answers at ${external}; Mosquitto runs skipped`);

for (const [name, url] of brokers) {
  const devices = await fleet(url, CONCURRENT_DEVICES);
  Deno.bench(`round trip, 1 device at a time (${name})`, { group: "mqtt round trip" }, async () => {
    await devices.run(1);
  });
  Deno.bench(
    `${CONCURRENT_DEVICES} round trips in flight (${name})`,
    { group: `mqtt ${CONCURRENT_DEVICES} round trips` },
    async () => {
      await devices.run(CONCURRENT_DEVICES);
    },
  );
}
