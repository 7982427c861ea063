import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ACTIVATE_SUCCESS,
  encodeMessage,
  type InitiateMessage,
  newToken,
  randomPrivateKey,
  signMessage,
  toHex,
  UPDATE_FAIL_DIGEST,
  UPDATE_FAIL_FILE,
  UPDATE_FAIL_HTTP_ERROR,
  UPDATE_FAIL_SERVER,
  UPDATE_SUCCESS,
  uuidToBytes,
} from "../../srup/mod.ts";
import { connectMqtt, deviceTopic, startEmbeddedBroker } from "../../mqtt/mod.ts";
import { readState } from "../../device/mod.ts";
import { TEST_PRIVATE_KEY } from "../_helpers.ts";
import { BROKERS, recordingLogger, within } from "../mqtt/_brokers.ts";
import { artifactServer, deviceHarness, FIRMWARE } from "./_harness.ts";
import { sha256 } from "./_fixture.ts";

const DIGEST = await sha256(FIRMWARE);

for (const broker of BROKERS) {
  Deno.test(`a device goes from INITIATE to activation over MQTT (${broker.name})`, async () => {
    const server = await broker.start();
    const files = artifactServer();
    const h = await deviceHarness(server.url);
    const device = await h.start();
    try {
      const token = newToken();
      await h.link.sendInitiate(h.id, { token, url: files.url("/fw.bin"), digest: DIGEST });
      assert.equal((await h.response(token)).status, UPDATE_SUCCESS);
      assert.equal((await readState(h.dir))?.staged?.token, toHex(token));
      await h.link.sendActivate(h.id, { token });
      const activated = await h.response(token, 2);
      assert.equal(activated.status, ACTIVATE_SUCCESS);
      assert.equal(activated.version, 2);
      assert.deepEqual(await Deno.readFile(join(h.dir, "current")), FIRMWARE);
      assert.deepEqual(device.agent.status(), {
        id: h.id,
        current: toHex(DIGEST),
        previous: null,
        staged: null,
      });
    } finally {
      await device.close();
      await h.close();
      await files.close();
      await server.close();
    }
  });

  Deno.test(`a device answers every download failure with its status over MQTT (${broker.name})`, async (t) => {
    const server = await broker.start();
    const files = artifactServer();
    const h = await deviceHarness(server.url);
    const device = await h.start();
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const cases: [string, string, number][] = [
      ["HTTP 404: 0xFE", files.url("/404"), UPDATE_FAIL_FILE],
      ["HTTP 410: 0xFE", files.url("/410"), UPDATE_FAIL_FILE],
      ["HTTP 500: 0xFC", files.url("/500"), UPDATE_FAIL_HTTP_ERROR],
      ["a body cut short: 0xFE", files.url("/broken.bin"), UPDATE_FAIL_FILE],
      ["an oversized download: 0xFE", files.url("/big.bin"), UPDATE_FAIL_FILE],
      ["connection refused: 0xFD", `http://127.0.0.1:${deadPort}/fw.bin`, UPDATE_FAIL_SERVER],
      ["no headers within the connect timeout: 0xFD", files.url("/stall"), UPDATE_FAIL_SERVER],
      ["a file that is not what was signed: 0xFF", files.url("/fw.bin"), UPDATE_FAIL_DIGEST],
    ];
    try {
      for (const [name, url, status] of cases) {
        await t.step(name, async () => {
          const token = newToken();
          const digest = status === UPDATE_FAIL_DIGEST ? new Uint8Array(32) : DIGEST;
          await h.link.sendInitiate(h.id, { token, url, digest });
          assert.equal((await h.response(token)).status, status);
        });
      }
      assert.equal((await readState(h.dir))?.staged, undefined);
    } finally {
      await device.close();
      await h.close();
      await files.close();
      await server.close();
    }
  });

  Deno.test(`a device drops forged, replayed, misaddressed and premature frames over MQTT (${broker.name})`, async (t) => {
    const server = await broker.start();
    const files = artifactServer();
    const h = await deviceHarness(server.url);
    const device = await h.start();
    const attacker = await connectMqtt(server.url, { clean: true });
    const topic = deviceTopic(h.id);
    async function frame(fields: Partial<InitiateMessage>, key = TEST_PRIVATE_KEY) {
      return encodeMessage(
        await signMessage<InitiateMessage>({
          type: "initiate",
          version: 2,
          sequence: 1_000_000n,
          target: uuidToBytes(h.id),
          token: newToken(),
          url: files.url("/fw.bin"),
          digest: DIGEST,
          signature: new Uint8Array(),
          ...fields,
        }, key),
      );
    }
    /** Sends a valid INITIATE; the agent handles frames in order, so nothing before it replied. */
    async function nothingElseAnswered(): Promise<void> {
      const token = newToken();
      await h.link.sendInitiate(h.id, { token, url: files.url("/fw.bin"), digest: DIGEST });
      await h.response(token);
      assert.equal(h.responses.at(-1)!.token.toHex(), token.toHex());
    }
    try {
      const before = h.responses.length;
      await t.step("a forged INITIATE", async () => {
        await attacker.publish(topic, await frame({}, randomPrivateKey()));
        await nothingElseAnswered();
        assert.equal(device.agent.rejections.get("bad_signature"), 1);
      });
      await t.step("an INITIATE for another device", async () => {
        await attacker.publish(
          topic,
          await frame({ target: uuidToBytes(crypto.randomUUID()) }, TEST_PRIVATE_KEY),
        );
        await nothingElseAnswered();
        assert.equal(device.agent.rejections.get("wrong_target"), 1);
      });
      await t.step("a replayed INITIATE", async () => {
        const capturedFrame = new Promise<Uint8Array>((resolve) => {
          const stop = attacker.onMessage((_topic, payload) => {
            stop();
            resolve(payload.slice());
          });
        });
        await attacker.subscribe(topic);
        const token = newToken();
        await h.link.sendInitiate(h.id, { token, url: files.url("/fw.bin"), digest: DIGEST });
        const captured = await within(capturedFrame, "the INITIATE on the device topic");
        await h.response(token);
        await attacker.publish(topic, captured);
        await nothingElseAnswered();
        assert.equal(device.agent.rejections.get("token_reused"), 1);
      });
      await t.step("an ACTIVATE before any RESPONSE for its token", async () => {
        await h.link.sendActivate(h.id, { token: newToken() });
        await nothingElseAnswered();
        assert.equal(device.agent.rejections.get("unknown_token"), 1);
      });
      // One RESPONSE per valid INITIATE (4 checks, 1 captured), none for the dropped frames.
      assert.equal(h.responses.length - before, 5);
      assert.equal(device.agent.status().current, null);
    } finally {
      await attacker.close();
      await device.close();
      await h.close();
      await files.close();
      await server.close();
    }
  });

  Deno.test(`a device restarted mid-update still activates, and gets frames sent while offline (${broker.name})`, async (t) => {
    const server = await broker.start();
    const files = artifactServer();
    const h = await deviceHarness(server.url);
    const token = newToken();
    try {
      await t.step("staged, then the device stops before ACTIVATE", async () => {
        const device = await h.start();
        await h.link.sendInitiate(h.id, { token, url: files.url("/fw.bin"), digest: DIGEST });
        assert.equal((await h.response(token)).status, UPDATE_SUCCESS);
        await device.close();
      });
      await t.step(
        "the ACTIVATE sent while it is offline is delivered when it returns",
        async () => {
          await h.link.sendActivate(h.id, { token });
          const device = await h.start();
          try {
            assert.equal((await h.response(token, 2)).status, ACTIVATE_SUCCESS);
            assert.deepEqual(await Deno.readFile(join(h.dir, "current")), FIRMWARE);
          } finally {
            await device.close();
          }
        },
      );
    } finally {
      await h.close();
      await files.close();
      await server.close();
    }
  });
}

Deno.test("a device waiting through a broker restart reconnects and answers the next INITIATE", async () => {
  let broker = await startEmbeddedBroker({ port: 0 });
  const files = artifactServer();
  const h = await deviceHarness(broker.url);
  const logger = recordingLogger();
  const device = await h.start({ logger });
  try {
    await broker.close();
    const reconnected = logger.next("mqtt.connected");
    broker = await startEmbeddedBroker({ port: broker.port });
    await reconnected;
    // The server's connection reconnects too; its subscription is restored by npm:mqtt.
    const token = newToken();
    await h.link.sendInitiate(h.id, { token, url: files.url("/fw.bin"), digest: DIGEST });
    assert.equal((await h.response(token)).status, UPDATE_SUCCESS);
  } finally {
    await device.close();
    await h.close();
    await files.close();
    await broker.close();
  }
});
