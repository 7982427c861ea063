import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ConnectionRefusedError,
  connectMqtt,
  mqttClientOptions,
  OutboundQueueFullError,
  startEmbeddedBroker,
} from "../../mqtt/mod.ts";
import { BROKERS, recordingLogger, waitUntil, within } from "./_brokers.ts";
import { MOSQUITTO_MISSING, startMosquitto } from "./_mosquitto.ts";
import { jsonLogger } from "../../obs/mod.ts";

const text = new TextEncoder();

for (const broker of BROKERS) {
  Deno.test(`connectMqtt() speaks MQTT ${broker.protocolVersion} to the ${broker.name}`, async () => {
    const server = await broker.start();
    try {
      const connection = await connectMqtt(server.url, { clean: true });
      assert.equal(connection.protocolVersion, broker.protocolVersion);
      assert.equal(connection.connected, true);
      await connection.close();
    } finally {
      await server.close();
    }
  });

  Deno.test(`a persistent session gets QoS 1 messages sent while it was away (${broker.name})`, async () => {
    const server = await broker.start();
    const topic = `SRUP/${crypto.randomUUID()}`;
    const clientId = `flotilla-test-${crypto.randomUUID()}`;
    try {
      const first = await connectMqtt(server.url, { clientId, clean: false });
      await first.subscribe(topic);
      await first.close();

      const sender = await connectMqtt(server.url, { clean: true });
      await sender.publish(topic, text.encode("while away"));
      await sender.close();

      const { promise, resolve } = Promise.withResolvers<string>();
      const back = await connectMqtt(server.url, {
        clientId,
        clean: false,
        onMessage: (_topic, payload) => resolve(new TextDecoder().decode(payload)),
      });
      assert.equal(await within(promise, "the queued message"), "while away");
      await back.close();
      // Leave nothing behind on a shared broker.
      await (await connectMqtt(server.url, { clientId, clean: true })).close();
    } finally {
      await server.close();
    }
  });
}

Deno.test("connectMqtt() rejects with ConnectionRefusedError when MQTT 5 is forced on a 3.1.1 broker", async () => {
  const broker = await startEmbeddedBroker({ port: 0 });
  try {
    const error = await connectMqtt(broker.url, { protocolVersion: 5 }).then(() => null, (e) => e);
    assert.ok(error instanceof ConnectionRefusedError);
    assert.equal(error.code, 1);
    assert.match(
      error.message,
      /Cannot connect to MQTT broker "mqtt:\/\/127\.0\.0\.1:\d+": refused/,
    );
  } finally {
    await broker.close();
  }
});

Deno.test("connectMqtt() falls back from MQTT 5 to 3.1.1 logging at info, never warn", async () => {
  const broker = await startEmbeddedBroker({ port: 0 });
  const lines: { level: string; event: string }[] = [];
  try {
    const connection = await connectMqtt(broker.url, {
      clean: true,
      logger: jsonLogger((line) => lines.push(JSON.parse(line))),
    });
    assert.equal(connection.protocolVersion, 4);
    await connection.close();
    assert.ok(lines.some((line) => line.event === "mqtt.protocol_fallback"));
    assert.deepEqual(lines.filter((line) => line.level !== "info"), []);
  } finally {
    await broker.close();
  }
});

/**
 * A broker that speaks only 3.1.1 the way RabbitMQ 3.x's MQTT plugin does: it closes the socket on
 * an MQTT 5 CONNECT without a CONNACK. Records the protocol level of every CONNECT.
 */
function closingOnMqtt5() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const levels: number[] = [];
  const sockets = new Set<Deno.Conn>();
  (async () => {
    for await (const socket of listener) {
      sockets.add(socket);
      (async () => {
        const buffer = new Uint8Array(4096);
        const n = await socket.read(buffer).catch(() => null);
        // Fixed header, remaining length (short here), "MQTT" with its length, then the level.
        let at = 1;
        while (n !== null && (buffer[at]! & 0x80) !== 0) at++;
        const level = n === null ? 0 : buffer[at + 7]!;
        levels.push(level);
        if (level === 4) {
          await socket.write(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
          while ((await socket.read(buffer).catch(() => null)) !== null) {
            /* PINGREQ, DISCONNECT */
          }
        }
        sockets.delete(socket);
        socket.close();
      })();
    }
  })().catch(() => {});
  const { port } = listener.addr as Deno.NetAddr;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    levels,
    close() {
      listener.close();
      for (const socket of sockets) socket.close();
    },
  };
}

Deno.test("connectMqtt() falls back to 3.1.1 when the broker closes an MQTT 5 CONNECT unanswered", async () => {
  const broker = closingOnMqtt5();
  const lines: { level: string; event: string; reason?: string }[] = [];
  try {
    const connection = await within(
      connectMqtt(broker.url, {
        clean: true,
        reconnectMinMs: 20,
        logger: jsonLogger((line) => lines.push(JSON.parse(line))),
      }),
      "the 3.1.1 connection",
    );
    assert.equal(connection.protocolVersion, 4);
    await connection.close();
    assert.deepEqual(broker.levels, [5, 4]);
    const fallback = lines.find((line) => line.event === "mqtt.protocol_fallback");
    assert.equal(fallback?.reason, "closed without CONNACK");
    assert.deepEqual(lines.filter((line) => line.level !== "info"), []);
  } finally {
    broker.close();
  }
});

Deno.test("connectMqtt() with protocolVersion 5 forced keeps asking for 5 on such a broker", async () => {
  const broker = closingOnMqtt5();
  const stop = new AbortController();
  try {
    const pending = connectMqtt(broker.url, {
      protocolVersion: 5,
      clean: true,
      reconnectMinMs: 20,
      reconnectMaxMs: 40,
      signal: stop.signal,
    });
    await waitUntil(() => broker.levels.length >= 3, "three CONNECTs");
    stop.abort(new Error("gave up"));
    await assert.rejects(pending, /gave up/);
    assert.ok(broker.levels.every((level) => level === 5), String(broker.levels));
  } finally {
    broker.close();
  }
});

Deno.test("connectMqtt() keeps retrying until the broker comes up, or until aborted", async (t) => {
  const probe = await startEmbeddedBroker({ port: 0 });
  const port = probe.port;
  await probe.close();
  await t.step("retries, then connects once the broker listens", async () => {
    const pending = connectMqtt(`mqtt://127.0.0.1:${port}`, {
      clean: true,
      reconnectMinMs: 20,
      reconnectMaxMs: 50,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const broker = await startEmbeddedBroker({ port });
    try {
      const connection = await within(pending, "the connection");
      assert.equal(connection.connected, true);
      await connection.close();
    } finally {
      await broker.close();
    }
  });
  await t.step("an abort rejects with its reason", async () => {
    const controller = new AbortController();
    const pending = connectMqtt(`mqtt://127.0.0.1:${port}`, {
      signal: controller.signal,
      reconnectMinMs: 20,
    });
    controller.abort(new Error("stopped"));
    await assert.rejects(within(pending, "the rejection"), /stopped/);
  });
});

Deno.test("MqttConnection bounds its outbound queue and delivers the queue after a broker restart", async (t) => {
  let broker = await startEmbeddedBroker({ port: 0 });
  const connection = await connectMqtt(broker.url, {
    clean: true,
    maxPending: 2,
    reconnectMinMs: 20,
    reconnectMaxMs: 100,
  });
  try {
    await broker.close();
    const sent: Promise<void>[] = [];
    await t.step("publishes beyond the limit are rejected while the broker is away", async () => {
      sent.push(connection.publish("flotilla/a", text.encode("1")));
      sent.push(connection.publish("flotilla/a", text.encode("2")));
      assert.equal(connection.pending, 2);
      const error = await connection.publish("flotilla/a", text.encode("3")).then(
        () => null,
        (e) => e,
      );
      assert.ok(error instanceof OutboundQueueFullError);
      assert.equal(
        error.message,
        "Cannot publish: outbound queue is full (2 messages await acknowledgement)",
      );
    });
    await t.step("the queued publishes are acknowledged after the broker returns", async () => {
      broker = await startEmbeddedBroker({ port: broker.port });
      await within(Promise.all(sent), "PUBACKs after the restart");
      assert.equal(connection.pending, 0);
      assert.equal(connection.latency.snapshot().count, 2);
    });
  } finally {
    await connection.close();
    await broker.close();
  }
});

Deno.test("mqttClientOptions() reads TLS files and checks the URL", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const ca = join(dir, "ca.pem");
    await Deno.writeTextFile(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    await t.step("mqtts with a CA file: the PEM is read, the session is persistent", async () => {
      const options = await mqttClientOptions("mqtts://broker.example:8883", {
        caFile: ca,
        clientId: "dev-1",
      });
      assert.match(String(options.ca), /BEGIN CERTIFICATE/);
      assert.equal(options.clean, false);
      assert.equal(options.clientId, "dev-1");
    });
    await t.step("TLS files with mqtt:// are refused", async () => {
      await assert.rejects(
        mqttClientOptions("mqtt://broker.example", { caFile: ca }),
        /must use mqtts:\/\/ with CA or client files/,
      );
    });
    await t.step("a certificate without its key is refused", async () => {
      await assert.rejects(
        mqttClientOptions("mqtts://broker.example", { certFile: ca }),
        /a client certificate needs its key/,
      );
    });
    await t.step("a missing file is named", async () => {
      await assert.rejects(
        mqttClientOptions("mqtts://broker.example", { caFile: join(dir, "nope.pem") }),
        /Cannot read CA file ".*nope\.pem"/,
      );
    });
    await t.step("other schemes are refused", async () => {
      await assert.rejects(mqttClientOptions("ws://broker.example"), /must start with mqtt/);
      await assert.rejects(mqttClientOptions("not a url"), /Invalid broker URL: "not a url"/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "MqttConnection subscribes again after each Mosquitto restart that reports the session present",
  ignore: MOSQUITTO_MISSING !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const mosquitto = await startMosquitto();
    const filter = `$share/flotilla/SRUP/servers/${crypto.randomUUID().slice(0, 8)}/+`;
    const topic = filter.replace("$share/flotilla/", "").replace("+", "device");
    const logger = recordingLogger();
    const received: string[] = [];
    const listener = await connectMqtt(mosquitto.url, {
      clientId: `flotilla-test-${crypto.randomUUID()}`,
      clean: false,
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
      logger,
      onMessage: (_topic, payload) => received.push(new TextDecoder().decode(payload)),
    });
    const sender = await connectMqtt(mosquitto.url, {
      clean: true,
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
    });
    try {
      assert.equal(listener.protocolVersion, 5);
      await listener.subscribe(filter);
      for (const round of [1, 2]) {
        await t.step(`restart ${round}`, async () => {
          const connected = logger.next("mqtt.connected");
          await mosquitto.restart();
          // Mosquitto 2.0.11 keeps the session but loses its shared subscription.
          assert.equal((await connected).fields.sessionPresent, true);
          await waitUntil(() => sender.connected, "the sender to reconnect");
          // A message published before the subscription is back is lost: retry until one lands.
          const deadline = Date.now() + 10_000;
          while (!received.includes(`after ${round}`)) {
            assert.ok(Date.now() < deadline, `nothing received after restart ${round}`);
            await sender.publish(topic, text.encode(`after ${round}`));
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        });
      }
    } finally {
      await Promise.all([listener.close(), sender.close()]);
      await mosquitto.close();
    }
  },
});

const MQTT5_URL = Deno.env.get("FLOTILLA_TEST_MQTT5_URL");

Deno.test({
  name:
    `connectMqtt() speaks MQTT 5 to the private Mosquitto, whose shared subscriptions deal each message once${
      MQTT5_URL ? "" : " (ignored: FLOTILLA_TEST_MQTT5_URL is unset)"
    }`,
  ignore: MQTT5_URL === undefined,
  async fn() {
    const group = `flotilla-test-${crypto.randomUUID()}`;
    const topic = `flotilla/test/${group}`;
    const members = await Promise.all(
      [1, 2].map((n) => connectMqtt(MQTT5_URL!, { clientId: `${group}-${n}`, clean: true })),
    );
    const publisher = await connectMqtt(MQTT5_URL!, { clientId: `${group}-p`, clean: true });
    try {
      const received: string[] = [];
      for (const member of members) {
        assert.equal(member.protocolVersion, 5);
        member.onMessage((_topic, payload) => received.push(new TextDecoder().decode(payload)));
        await member.subscribe(`$share/${group}/${topic}/+`);
      }
      const sent = Array.from({ length: 10 }, (_, i) => `m${i}`);
      for (const message of sent) await publisher.publish(`${topic}/x`, text.encode(message));
      await waitUntil(() => received.length >= sent.length, "ten messages");
      assert.deepEqual(received.toSorted(), sent.toSorted());
    } finally {
      await Promise.all([...members, publisher].map((c) => c.close()));
    }
  },
});
