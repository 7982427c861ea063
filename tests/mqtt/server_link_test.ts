import assert from "node:assert/strict";
import {
  connectMqtt,
  createServerLink,
  type MqttConnection,
  type ServerLink,
  type ServerLinkOptions,
  serverTopic,
  startEmbeddedBroker,
  WithheldSendError,
} from "../../mqtt/mod.ts";
import { createSequenceAllocator } from "../../io/sequence.ts";
import { wallClock } from "../../io/clock.ts";
import { SimClock } from "../../sim/sim_clock.ts";
import {
  decodeMessage,
  defaultEd25519,
  encodeMessage,
  newToken,
  randomPrivateKey,
  type ResponseMessage,
  signMessage,
  uuidToBytes,
  verifyKeyProof,
  verifyMessage,
} from "../../srup/mod.ts";
import { BROKERS, recordingLogger, waitUntil } from "./_brokers.ts";

function memorySequence() {
  let stored = 0n;
  return createSequenceAllocator({
    load: () => Promise.resolve(stored),
    persist: (upTo) => Promise.resolve(void (stored = upTo)),
  });
}

async function response(key: Uint8Array, fields: Partial<ResponseMessage> = {}) {
  return encodeMessage(
    await signMessage<ResponseMessage>({
      type: "response",
      version: 2,
      sequence: 1n,
      token: newToken(),
      status: 0,
      signature: new Uint8Array(),
      ...fields,
    }, key),
  );
}

/** A server link with a fresh server key, a known device, and a plain client as that device. */
async function setup(url: string, options: Partial<ServerLinkOptions> = {}) {
  const serverKey = randomPrivateKey();
  const deviceId = crypto.randomUUID();
  const deviceKey = randomPrivateKey();
  const devicePublic = await (await defaultEd25519()).getPublicKey(deviceKey);
  const logger = recordingLogger();
  const received: [string, ResponseMessage][] = [];
  const serverConnection = await connectMqtt(url, { clean: true, logger });
  const link = await createServerLink(serverConnection, {
    privateKey: serverKey,
    sequence: memorySequence(),
    deviceKey: (id) => Promise.resolve(id === deviceId ? devicePublic : undefined),
    onResponse: (id, message) => void received.push([id, message]),
    logger,
    ...options,
  });
  const device = await connectMqtt(url, { clean: true });
  return { serverKey, deviceId, deviceKey, logger, received, serverConnection, link, device };
}

async function teardown(...connections: MqttConnection[]): Promise<void> {
  await Promise.all(connections.map((c) => c.close()));
}

for (const broker of BROKERS) {
  Deno.test(`ServerLink delivers verified RESPONSEs and counts every rejected frame (${broker.name})`, async (t) => {
    const server = await broker.start();
    const s = await setup(server.url);
    const topic = serverTopic(s.link.serverId, s.deviceId);
    async function expectRejected(frame: Uint8Array, reason: string, on = topic) {
      const logged = s.logger.next("frame.rejected");
      await s.device.publish(on, frame);
      assert.equal((await logged).fields.reason, reason);
      assert.equal(s.link.rejections.get(reason as never), 1);
    }
    try {
      await t.step("a signed RESPONSE reaches the handler", async () => {
        const frame = await response(s.deviceKey, { sequence: 5n, status: 0xfe });
        await s.device.publish(topic, frame);
        await waitUntil(() => s.received.length === 1, "the response");
        const [id, message] = s.received[0]!;
        assert.equal(id, s.deviceId);
        assert.equal(message.status, 0xfe);
        assert.equal(message.sequence, 5n);
      });
      await t.step("a replayed sequence id", async () => {
        await expectRejected(await response(s.deviceKey, { sequence: 5n }), "replay");
      });
      await t.step("a forged signature", async () => {
        await expectRejected(await response(randomPrivateKey(), { sequence: 6n }), "bad_signature");
      });
      await t.step("a malformed frame, by decode error code", async () => {
        await expectRejected(new Uint8Array([2, 2, 0]), "truncated");
      });
      await t.step("an unknown device", async () => {
        const stranger = serverTopic(s.link.serverId, crypto.randomUUID());
        await expectRejected(
          await response(s.deviceKey, { sequence: 7n }),
          "unknown_device",
          stranger,
        );
      });
      await t.step("a message type a server never accepts", async () => {
        const activate = encodeMessage(
          await signMessage({
            type: "activate",
            version: 2,
            sequence: 8n,
            token: newToken(),
            signature: new Uint8Array(),
          }, s.deviceKey),
        );
        await expectRejected(activate, "unexpected_type");
      });
      await t.step("a topic that names no device", async () => {
        await expectRejected(
          await response(s.deviceKey),
          "bad_topic",
          `SRUP/servers/${s.link.serverId}/x`,
        );
      });
      assert.equal(s.received.length, 1);
      assert.equal(s.link.rejections.total, 6);
    } finally {
      await teardown(s.serverConnection, s.device);
      await server.close();
    }
  });

  Deno.test(`ServerLink never moves a device's replay counter for a forged RESPONSE (${broker.name})`, async () => {
    const server = await broker.start();
    const s = await setup(server.url);
    const topic = serverTopic(s.link.serverId, s.deviceId);
    try {
      // The reference implementation raised its counter before checking the signature: one forged
      // frame with the largest sequence id locked the genuine sender out for good.
      const rejected = s.logger.next("frame.rejected");
      await s.device.publish(
        topic,
        await response(randomPrivateKey(), { sequence: 0xffff_ffff_ffff_ffffn }),
      );
      assert.equal((await rejected).fields.reason, "bad_signature");
      await s.device.publish(topic, await response(s.deviceKey, { sequence: 1n }));
      await waitUntil(() => s.received.length === 1, "the genuine response");
      assert.equal(s.received[0]![1].sequence, 1n);
      assert.equal(s.link.rejections.get("replay"), 0);
    } finally {
      await teardown(s.serverConnection, s.device);
      await server.close();
    }
  });

  Deno.test(`ServerLink never moves a device's replay counter for a frame it has not verified (${broker.name})`, async (t) => {
    const server = await broker.start();
    const s = await setup(server.url);
    const topic = serverTopic(s.link.serverId, s.deviceId);
    const huge = 0xffff_ffff_ffff_ffffn;
    async function expectRejected(frame: Uint8Array, reason: string) {
      const logged = s.logger.next("frame.rejected");
      await s.device.publish(topic, frame);
      assert.equal((await logged).fields.reason, reason);
    }
    try {
      await t.step("signed by another device's key", async () => {
        await expectRejected(
          await response(randomPrivateKey(), { sequence: huge }),
          "bad_signature",
        );
      });
      await t.step("a status byte no RESPONSE has", async () => {
        const frame = await response(s.deviceKey, { sequence: huge });
        frame[frame.length - 1] = 0x42;
        await expectRejected(frame, "unknown_status");
      });
      await t.step("a message type the server does not know", async () => {
        const frame = await response(s.deviceKey, { sequence: huge });
        frame[1] = 0x7f;
        await expectRejected(frame, "unknown_type");
      });
      await t.step("a ROLLBACK, which only servers send", async () => {
        const rollback = encodeMessage(
          await signMessage({
            type: "rollback",
            version: 2,
            sequence: huge,
            target: uuidToBytes(s.deviceId),
            token: newToken(),
            digest: new Uint8Array(32),
            signature: new Uint8Array(),
          }, s.deviceKey),
        );
        await expectRejected(rollback, "unexpected_type");
      });
      await t.step("the device's genuine RESPONSE with sequence id 1 is accepted", async () => {
        await s.device.publish(topic, await response(s.deviceKey, { sequence: 1n }));
        await waitUntil(() => s.received.length === 1, "the genuine response");
        assert.equal(s.received[0]![1].sequence, 1n);
        assert.equal(s.link.rejections.get("replay"), 0);
      });
    } finally {
      await teardown(s.serverConnection, s.device);
      await server.close();
    }
  });

  Deno.test(`ServerLink signs INITIATE, ACTIVATE and ROLLBACK with increasing sequence ids (${broker.name})`, async () => {
    const server = await broker.start();
    const s = await setup(server.url);
    const frames: Uint8Array[] = [];
    s.device.onMessage((_topic, payload) => frames.push(payload.slice()));
    await s.device.subscribe(`SRUP/${s.deviceId}`);
    try {
      const token = newToken();
      const digest = new Uint8Array(32).fill(7);
      const sent = await s.link.sendInitiate(s.deviceId, {
        token,
        url: "https://x.example/f",
        digest,
      });
      assert.equal(sent.sequence, 1n);
      const activate = await s.link.sendActivate(s.deviceId, { token });
      assert.equal(activate.sequence, 2n);
      const back = await s.link.sendRollback(s.deviceId, { token: newToken(), digest });
      assert.equal(back.sequence, 3n);
      assert.equal(s.serverConnection.latency.snapshot().count, 3);
      await waitUntil(() => frames.length === 3, "the three frames");
      const serverPublic = await (await defaultEd25519()).getPublicKey(s.serverKey);
      const initiate = decodeMessage(frames[0]!);
      const activation = decodeMessage(frames[1]!);
      const rollback = decodeMessage(frames[2]!);
      assert.ok(rollback.type === "rollback");
      assert.deepEqual(rollback.target, uuidToBytes(s.deviceId));
      assert.deepEqual(rollback.digest, digest);
      assert.ok(initiate.type === "initiate");
      assert.deepEqual(initiate.target, uuidToBytes(s.deviceId));
      assert.equal(initiate.url, "https://x.example/f");
      assert.deepEqual(initiate.digest, digest);
      assert.equal(activation.type, "activate");
      assert.deepEqual(activation.token, token);
      for (const message of [initiate, activation, rollback]) {
        assert.equal(message.version, 2);
        assert.ok(await verifyMessage(message, serverPublic));
      }
    } finally {
      await teardown(s.serverConnection, s.device);
      await server.close();
    }
  });
}

Deno.test("ServerLink withholds a frame whose mayPublish says no, after taking its id, and counts it", async () => {
  const broker = BROKERS[0]!;
  const server = await broker.start();
  const s = await setup(server.url);
  const frames: Uint8Array[] = [];
  s.device.onMessage((_topic, payload) => frames.push(payload.slice()));
  await s.device.subscribe(`SRUP/${s.deviceId}`);
  try {
    const digest = new Uint8Array(32).fill(7);
    const fields = { token: newToken(), url: "https://x.example/f", digest };
    await assert.rejects(
      s.link.sendInitiate(s.deviceId, fields, { mayPublish: () => false }),
      WithheldSendError,
    );
    await assert.rejects(
      s.link.sendActivate(s.deviceId, { token: newToken() }, { mayPublish: () => false }),
      WithheldSendError,
    );
    assert.equal(s.link.withheld, 2);
    assert.equal(s.serverConnection.latency.snapshot().count, 0);
    const sent = await s.link.sendInitiate(s.deviceId, fields, { mayPublish: () => true });
    // The withheld frames used ids 1 and 2: a device never sees an id twice.
    assert.equal(sent.sequence, 3n);
    await waitUntil(() => frames.length === 1, "the one frame published");
    assert.equal(decodeMessage(frames[0]!).sequence, 3n);
  } finally {
    await teardown(s.serverConnection, s.device);
    await server.close();
  }
});

for (const broker of BROKERS.slice(0, 1)) {
  Deno.test(`ServerLink signs each device's frames with the key it trusts, and a KEY_ROTATE with the new key's proof (${broker.name})`, async () => {
    const server = await broker.start();
    const nextKey = randomPrivateKey();
    const nextPublic = await (await defaultEd25519()).getPublicKey(nextKey);
    const onNext = new Set<string>();
    // The setup makes the current key: it is known once setup returns.
    const signing: { current: Uint8Array } = { current: new Uint8Array() };
    const s = await setup(server.url, {
      signingKey: (id) => onNext.has(id) ? nextKey : signing.current,
    });
    signing.current = s.serverKey;
    const frames: Uint8Array[] = [];
    s.device.onMessage((_topic, payload) => frames.push(payload.slice()));
    await s.device.subscribe(`SRUP/${s.deviceId}`);
    try {
      const serverPublic = await (await defaultEd25519()).getPublicKey(s.serverKey);
      const sent = await s.link.sendKeyRotate(s.deviceId, {
        token: newToken(),
        key: nextPublic,
        keyPrivate: nextKey,
        overlap: 60_000,
      });
      assert.equal(sent.version, 2);
      onNext.add(s.deviceId);
      await s.link.sendActivate(s.deviceId, { token: newToken() });
      await waitUntil(() => frames.length === 2, "the two frames");
      const rotate = decodeMessage(frames[0]!);
      assert.ok(rotate.type === "key_rotate");
      assert.deepEqual(rotate.key, nextPublic);
      assert.equal(rotate.overlap, 60_000n);
      assert.deepEqual(rotate.target, uuidToBytes(s.deviceId));
      assert.ok(await verifyMessage(rotate, serverPublic));
      assert.ok(await verifyKeyProof(rotate, s.link.serverId));
      // Once the device trusts the next key, the next key signs its frames.
      const activate = decodeMessage(frames[1]!);
      assert.ok(await verifyMessage(activate, nextPublic));
      assert.equal(await verifyMessage(activate, serverPublic), false);
    } finally {
      await teardown(s.serverConnection, s.device);
      await server.close();
    }
  });
}

const mqtt5 = BROKERS.find((b) => b.protocolVersion === 5);
Deno.test({
  name: "ServerLink instances on MQTT 5 split the responses through the shared subscription",
  ignore: mqtt5 === undefined,
  async fn() {
    const server = await mqtt5!.start();
    const s = await setup(server.url);
    const received: string[] = [];
    const second = await connectMqtt(server.url, { clean: true });
    const devicePublic = await (await defaultEd25519()).getPublicKey(s.deviceKey);
    const other: ServerLink = await createServerLink(second, {
      privateKey: s.serverKey,
      sequence: memorySequence(),
      deviceKey: () => Promise.resolve(devicePublic),
      onResponse: (_id, message) => void received.push(message.token.toHex()),
    });
    try {
      assert.equal(other.serverId, s.link.serverId);
      const topic = serverTopic(s.link.serverId, s.deviceId);
      for (let i = 1; i <= 20; i++) {
        await s.device.publish(topic, await response(s.deviceKey, { sequence: BigInt(i) }));
      }
      await waitUntil(() => s.received.length + received.length === 20, "20 responses");
      // Round-robin in Mosquitto: each instance gets a share, and no response is seen twice.
      assert.ok(s.received.length > 0 && received.length > 0);
      const all = [...s.received.map(([, m]) => m.token.toHex()), ...received];
      assert.equal(new Set(all).size, 20);
    } finally {
      await teardown(s.serverConnection, s.device, second);
      await server.close();
    }
  },
});

Deno.test("ServerLink reports a stall when devices time out while connected and nothing is heard", async (t) => {
  let broker = await startEmbeddedBroker({ port: 0 });
  let now = 0;
  const s = await setup(broker.url, { clock: { ...wallClock, now: () => now } });
  const topic = serverTopic(s.link.serverId, s.deviceId);
  try {
    await t.step("a timeout shorter than the time since the link started is not a stall", () => {
      now = 500;
      assert.equal(s.link.timedOut(s.deviceId, 1_000), false);
      assert.equal(s.link.silentTimeouts, 0);
    });
    await t.step("a timeout spanning silence on a live connection starts a stall", async () => {
      now = 1_500;
      const logged = s.logger.next("response.stalled");
      assert.equal(s.link.timedOut(s.deviceId, 1_000), true);
      assert.deepEqual((await logged).fields, {
        device: s.deviceId,
        waitedMs: 1_000,
        silentMs: 1_500,
        connectedMs: 1_500,
      });
      assert.equal(s.link.stalled, true);
      assert.equal(s.link.timedOut(s.deviceId, 1_000), false, "one report per stall");
      assert.equal(s.link.silentTimeouts, 2);
      assert.equal(s.link.stalls, 1);
    });
    await t.step("a verified RESPONSE ends it", async () => {
      now = 2_000;
      const logged = s.logger.next("response.resumed");
      await s.device.publish(topic, await response(s.deviceKey, { sequence: 1n }));
      assert.deepEqual((await logged).fields, { stalledMs: 2_000, timeouts: 2 });
      assert.equal(s.link.stalled, false);
      now = 2_500;
      assert.equal(s.link.timedOut(s.deviceId, 1_000), false, "a device answered meanwhile");
    });
    await t.step(
      "no stall while the broker is away, nor before it has been up a timeout",
      async () => {
        now = 10_000;
        const port = broker.port;
        await broker.close();
        await waitUntil(() => !s.serverConnection.connected, "the link to notice");
        assert.equal(s.link.timedOut(s.deviceId, 1_000), false);
        broker = await startEmbeddedBroker({ port });
        await waitUntil(() => s.serverConnection.connected, "the link to reconnect");
        now = 10_500;
        assert.equal(s.link.timedOut(s.deviceId, 1_000), false);
        now = 11_500;
        assert.equal(s.link.timedOut(s.deviceId, 1_000), true);
        assert.equal(s.link.stalls, 2);
        assert.equal(s.link.silentTimeouts, 3);
      },
    );
  } finally {
    await teardown(s.serverConnection, s.device);
    await broker.close();
  }
});

Deno.test("ServerLink logs a flood of rejected frames in brief: a line per reason, then a summary", async () => {
  const broker = await startEmbeddedBroker({ port: 0 });
  // Simulated time that does not move: the whole flood falls in one second.
  const clock = new SimClock(0);
  const s = await setup(broker.url, { clock });
  const topic = serverTopic(s.link.serverId, s.deviceId);
  try {
    const forged = await response(randomPrivateKey(), { sequence: 9n });
    for (let i = 0; i < 1_000; i++) {
      await s.device.publish(topic, i % 2 === 0 ? new Uint8Array([2, 2, 0]) : forged);
    }
    await waitUntil(() => s.link.rejections.total === 1_000, "1,000 rejections");
    const lines = s.logger.events.filter((e) => e.event === "frame.rejected");
    assert.deepEqual(lines.map((e) => e.fields.reason), ["truncated", "bad_signature"]);
    assert.equal(s.link.rejections.get("truncated"), 500);
    assert.equal(s.link.rejections.get("bad_signature"), 500);
    s.link.close();
    const summary = s.logger.events.filter((e) => e.event === "frame.rejected.summary");
    assert.equal(summary.length, 1);
    assert.equal(
      summary[0]!.fields.message,
      "1000 frames rejected in the last 1s: truncated=500, bad_signature=500",
    );
    assert.equal(summary[0]!.fields.notLogged, 998);
  } finally {
    await teardown(s.serverConnection, s.device);
    await broker.close();
  }
});
