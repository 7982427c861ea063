import assert from "node:assert/strict";
import {
  connectMqtt,
  createServerLink,
  type DeviceKeyVerdict,
  deviceTopic,
  serverTopic,
} from "../../mqtt/mod.ts";
import { createSequenceAllocator } from "../../io/sequence.ts";
import {
  decodeMessage,
  defaultEd25519,
  encodeMessage,
  newToken,
  randomPrivateKey,
  signDeviceKey,
  type SrupMessage,
  toHex,
} from "../../srup/mod.ts";
import { BROKERS, recordingLogger, waitUntil } from "./_brokers.ts";

function memorySequence() {
  let stored = 0n;
  return createSequenceAllocator({
    load: () => Promise.resolve(stored),
    persist: (upTo) => Promise.resolve(void (stored = upTo)),
  });
}

for (const broker of BROKERS) {
  Deno.test(`ServerLink hands DEVICE_KEYs to its handler and acknowledges only what it took (${broker.name})`, async (t) => {
    const server = await broker.start();
    const deviceId = crypto.randomUUID();
    const deviceKey = randomPrivateKey();
    const devicePublic = await (await defaultEd25519()).getPublicKey(deviceKey);
    const logger = recordingLogger();
    const verdicts: DeviceKeyVerdict[] = [];
    const seen: string[] = [];
    const serverConnection = await connectMqtt(server.url, { clean: true, logger });
    const keySets = [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5, 6])];
    const link = await createServerLink(serverConnection, {
      privateKey: randomPrivateKey(),
      serverId: toHex(newToken()),
      sequence: memorySequence(),
      deviceKey: (id) => Promise.resolve(id === deviceId ? devicePublic : undefined),
      onResponse: () => {},
      onDeviceKey: (_id, message) => {
        seen.push(toHex(message.token));
        return Promise.resolve(verdicts.shift()!);
      },
      releaseKeySets: keySets,
      logger,
    });
    const device = await connectMqtt(server.url, { clean: true });
    const received: SrupMessage[] = [];
    await device.subscribe(deviceTopic(deviceId));
    device.onMessage((_topic, payload) => void received.push(decodeMessage(payload)));
    const topic = serverTopic(link.serverId, deviceId);
    const proposal = (sequence: bigint) =>
      signDeviceKey({
        oldPrivateKey: deviceKey,
        newPrivateKey: randomPrivateKey(),
        sequence,
        token: newToken(),
      });
    try {
      await t.step("taken: acknowledged with an ACTIVATE of its token", async () => {
        verdicts.push({ acknowledge: true });
        const message = await proposal(1n);
        await device.publish(topic, encodeMessage(message));
        await waitUntil(() => received.length === 1, "the acknowledgment");
        assert.equal(received[0]!.type, "activate");
        assert.deepEqual(received[0]!.token, message.token);
      });
      await t.step(
        "refused: counted and logged with the handler's reason, no acknowledgment",
        async () => {
          verdicts.push({ acknowledge: false, reason: "key_reused" });
          const logged = logger.next("frame.rejected");
          await device.publish(topic, encodeMessage(await proposal(2n)));
          assert.equal((await logged).fields.reason, "key_reused");
          assert.equal(link.rejections.get("key_reused"), 1);
          assert.equal(received.length, 1);
        },
      );
      await t.step("a version 3 INITIATE goes after the key set chain, in order", async () => {
        await link.sendInitiate(deviceId, {
          token: newToken(),
          url: "https://updates.example/fw.bin",
          digest: new Uint8Array(32),
          manifest: new Uint8Array(10),
          notAfter: 1n,
        });
        await waitUntil(() => received.length === 4, "the chain and the INITIATE");
        const [, first, second, initiate] = received;
        assert.equal(first!.type, "release_keys");
        assert.equal(second!.type, "release_keys");
        assert.equal(initiate!.type, "initiate");
        assert.deepEqual(first?.type === "release_keys" && first.keySet, keySets[0]);
        assert.ok(first!.sequence! < second!.sequence! && second!.sequence! < initiate!.sequence!);
        // A version 2 INITIATE (no manifest) goes alone: older agents never see a key set.
        await link.sendInitiate(deviceId, {
          token: newToken(),
          url: "https://updates.example/fw.bin",
          digest: new Uint8Array(32),
        });
        await waitUntil(() => received.length === 5, "the version 2 INITIATE");
        assert.equal(received[4]!.type, "initiate");
      });
      assert.equal(seen.length, 2);
    } finally {
      link.close();
      await Promise.all([serverConnection.close(), device.close()]);
      await server.close();
    }
  });

  Deno.test(`ServerLink without a DEVICE_KEY handler drops one as unexpected_type (${broker.name})`, async () => {
    const server = await broker.start();
    const deviceId = crypto.randomUUID();
    const deviceKey = randomPrivateKey();
    const devicePublic = await (await defaultEd25519()).getPublicKey(deviceKey);
    const logger = recordingLogger();
    const serverConnection = await connectMqtt(server.url, { clean: true, logger });
    const link = await createServerLink(serverConnection, {
      privateKey: randomPrivateKey(),
      serverId: toHex(newToken()),
      sequence: memorySequence(),
      deviceKey: () => Promise.resolve(devicePublic),
      onResponse: () => {},
      logger,
    });
    const device = await connectMqtt(server.url, { clean: true });
    try {
      const logged = logger.next("frame.rejected");
      const message = await signDeviceKey({
        oldPrivateKey: deviceKey,
        newPrivateKey: randomPrivateKey(),
        sequence: 1n,
        token: newToken(),
      });
      await device.publish(serverTopic(link.serverId, deviceId), encodeMessage(message));
      assert.equal((await logged).fields.reason, "unexpected_type");
    } finally {
      link.close();
      await Promise.all([serverConnection.close(), device.close()]);
      await server.close();
    }
  });
}
