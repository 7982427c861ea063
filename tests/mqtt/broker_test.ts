import assert from "node:assert/strict";
import { connectMqtt, PortInUseError, selectBroker, startEmbeddedBroker } from "../../mqtt/mod.ts";
import { within } from "./_brokers.ts";

Deno.test("startEmbeddedBroker() listens on an ephemeral loopback port and relays messages", async () => {
  const broker = await startEmbeddedBroker({ port: 0 });
  try {
    assert.notEqual(broker.port, 0);
    assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
    const connection = await connectMqtt(broker.url, { clean: true });
    const received = new Promise<string>((resolve) => {
      connection.onMessage((_topic, payload) => resolve(new TextDecoder().decode(payload)));
    });
    await connection.subscribe("flotilla/test");
    await connection.publish("flotilla/test", new TextEncoder().encode("hello"));
    assert.equal(await within(received, "the message"), "hello");
    await connection.close();
  } finally {
    await broker.close();
  }
});

Deno.test("startEmbeddedBroker() rejects with PortInUseError when the port is taken", async () => {
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (holder.addr as Deno.NetAddr).port;
  try {
    const error = await startEmbeddedBroker({ port }).then(() => undefined, (e) => e);
    assert.ok(error instanceof PortInUseError);
    assert.equal(error.port, port);
    assert.equal(
      error.message,
      `Cannot start MQTT broker: port ${port} on "127.0.0.1" is already in use`,
    );
  } finally {
    holder.close();
  }
});

Deno.test("startEmbeddedBroker() rejects a port out of range", async () => {
  await assert.rejects(startEmbeddedBroker({ port: 70000 }), RangeError);
});

Deno.test("EmbeddedBroker.close() disconnects clients and frees the port", async () => {
  const broker = await startEmbeddedBroker({ port: 0 });
  const connection = await connectMqtt(broker.url, {
    clean: true,
    reconnectMinMs: 60_000,
    reconnectMaxMs: 60_000,
  });
  await broker.close();
  await broker.close();
  assert.equal(connection.connected, false);
  const again = await startEmbeddedBroker({ port: broker.port });
  await again.close();
  await connection.close();
});

Deno.test("selectBroker() uses an external URL as given and otherwise starts the embedded broker", async () => {
  const external = await selectBroker({ url: "mqtts://broker.example:8883" });
  assert.equal(external.url, "mqtts://broker.example:8883");
  assert.equal(external.embedded, undefined);
  await assert.rejects(selectBroker({ url: "http://broker.example" }), /must start with mqtt/);
  const embedded = await selectBroker({ port: 0 });
  try {
    assert.ok(embedded.embedded);
    assert.equal(embedded.url, embedded.embedded.url);
  } finally {
    await embedded.close();
  }
});
