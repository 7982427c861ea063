import assert from "node:assert/strict";
import { join } from "node:path";
import { connectMqtt, deviceTopic, serverTopic } from "../../mqtt/mod.ts";
import {
  FileDeviceStore,
  fileKeyStore,
  loadIdentity,
  readState,
  startDevice,
} from "../../device/mod.ts";
import {
  decodeMessage,
  defaultEd25519,
  type DeviceKeyMessage,
  encodeMessage,
  fromBase64,
  type InitiateMessage,
  keyFingerprint,
  newToken,
  privateKeyFromPem,
  randomPrivateKey,
  type ReleaseKeysMessage,
  type ResponseMessage,
  signDeviceKey,
  signKeySet,
  signManifest,
  signMessage,
  type SrupMessage,
  UPDATE_REFUSED_UNSIGNED,
  uuidToBytes,
  verifyMessage,
} from "../../srup/mod.ts";
import {
  ADMIN_TOKEN,
  api,
  rollOutToAll,
  startDevices,
  startTestService,
  type TestDevice,
} from "./_service.ts";
import { sha256 } from "../device/_fixture.ts";

const ed = await defaultEd25519();
const POLICY = {
  name: "keys",
  stages: [{ percent: 100 }],
  retry: { attempts: 1 },
  failure: { maxPercent: 50, minDevices: 1, action: "abort" },
};
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function manifest(bytes: Uint8Array, key: Uint8Array, securityVersion = 1) {
  return await signManifest({
    digest: await sha256(bytes),
    size: bytes.length,
    name: "fw",
    version: `2.${securityVersion}`,
    securityVersion,
    hardware: [],
  }, key);
}

/** Polls `get` until it returns something, for up to 20 s. */
async function until<T>(
  what: string,
  get: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    const value = await get();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test({
  name:
    "device and release key rotation end to end: a device replaces its key, a release key is rotated, the server alone adds no release key",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const rootKey = randomPrivateKey();
    const rootPub = await ed.getPublicKey(rootKey);
    const nextKey = randomPrivateKey();
    const nextPub = await ed.getPublicKey(nextKey);
    const keySetPath = join(root, "release-keys-v2.keyset");
    await Deno.writeFile(
      keySetPath,
      await signKeySet({ version: 2, keys: [nextPub] }, [rootKey, nextKey]),
    );
    const dataDir = join(root, "data");
    const service = await startTestService(dataDir, {
      speed: 120,
      env: { FLOTILLA_RELEASE_KEYS: rootPub.toBase64(), FLOTILLA_RELEASE_KEY_SETS: keySetPath },
    });
    let devices: TestDevice[] = [];
    const frames: { device: string; message: SrupMessage }[] = [];
    const listener = await connectMqtt(service.mqttUrl, { clean: true });
    const rejected = async (reason: string) => {
      const text = await (await fetch(`${service.apiUrl}/metrics`)).text();
      const line = text.split("\n").find((l) =>
        l.startsWith(`flotilla_frames_rejected_total{reason="${reason}"}`)
      );
      return line ? Number(line.split(" ").at(-1)) : 0;
    };
    try {
      devices = await startDevices(service, root, 2, { releaseKeys: [rootPub] });
      for (const device of devices) {
        await listener.subscribe(serverTopic(service.serverId, device.id));
      }
      listener.onMessage((topic, payload) => {
        frames.push({ device: topic.split("/").at(-1)!, message: decodeMessage(payload) });
      });
      const rotating = devices[0]!;
      const oldIdentity = await loadIdentity(rotating.dir);
      let newPublic!: Uint8Array;

      await t.step("GET /v1/server: the key set in force is version 2, the next key", async () => {
        const server = await api(service, "GET", "/v1/server");
        assert.equal(server.body.releaseKeySetVersion, 2);
        assert.deepEqual(server.body.releaseKeys, [nextPub.toBase64()]);
        assert.deepEqual(server.body.rootReleaseKeys, [rootPub.toBase64()]);
      });

      await t.step(
        "device rotate-key, then a restart: the server records the new key and acknowledges",
        async () => {
          await rotating.running.close();
          const cli = await new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", MAIN, "device", "rotate-key", "--dir", rotating.dir],
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.equal(cli.code, 0, new TextDecoder().decode(cli.stderr));
          const printed = JSON.parse(new TextDecoder().decode(cli.stdout));
          newPublic = fromBase64(printed.nextPublicKey);
          assert.equal(printed.keyFingerprint, keyFingerprint(oldIdentity.publicKey));
          rotating.running = await startDevice({
            dir: rotating.dir,
            serverKey: fromBase64(service.publicKey),
            broker: service.mqttUrl,
            serverId: service.serverId,
            releaseKeys: [rootPub],
          });
          // Acknowledged: the device renamed device.key.next over device.key.
          await until(
            "the device to switch keys",
            async () =>
              (await fileKeyStore(rotating.dir).loadNext()) === undefined ? true : undefined,
          );
          assert.deepEqual((await loadIdentity(rotating.dir)).publicKey, newPublic);
          const device = await api(service, "GET", `/v1/devices/${rotating.id}`);
          assert.equal(device.body.publicKey, newPublic.toBase64());
          assert.equal(device.body.keyFingerprint, keyFingerprint(newPublic));
          const rotations = device.body.keyRotations as Record<string, string>[];
          assert.equal(rotations.length, 1);
          assert.equal(rotations[0]!.oldFingerprint, keyFingerprint(oldIdentity.publicKey));
          assert.equal(rotations[0]!.newFingerprint, keyFingerprint(newPublic));
        },
      );

      await t.step(
        "the crash window: the server recorded a rotation whose acknowledgment the device never heard; its next start mends it",
        async () => {
          const crashed = devices[1]!;
          await crashed.running.close();
          const before = await loadIdentity(crashed.dir);
          // What the agent did before it died: the key kept, then the DEVICE_KEY sent.
          const seed = randomPrivateKey();
          await fileKeyStore(crashed.dir).saveNext(seed);
          const sent = await signDeviceKey({
            oldPrivateKey: before.privateKey,
            newPrivateKey: seed,
            sequence: await new FileDeviceStore(crashed.dir).nextSequence(),
            token: newToken(),
          });
          await listener.publish(serverTopic(service.serverId, crashed.id), encodeMessage(sent));
          const recorded = await until("the server to record the key", async () => {
            const device = await api(service, "GET", `/v1/devices/${crashed.id}`);
            return device.body.publicKey === sent.key.toBase64() ? device : undefined;
          });
          assert.equal((recorded.body.keyRotations as unknown[]).length, 1);
          // Still the old key on the device: it never switched.
          assert.deepEqual((await loadIdentity(crashed.dir)).publicKey, before.publicKey);
          crashed.running = await startDevice({
            dir: crashed.dir,
            serverKey: fromBase64(service.publicKey),
            broker: service.mqttUrl,
            serverId: service.serverId,
            releaseKeys: [rootPub],
          });
          // It proposes again, signed by the old key and naming the recorded one: acknowledged.
          await until(
            "the device to switch keys",
            async () =>
              (await fileKeyStore(crashed.dir).loadNext()) === undefined ? true : undefined,
          );
          assert.deepEqual((await loadIdentity(crashed.dir)).publicKey, sent.key);
          const device = await api(service, "GET", `/v1/devices/${crashed.id}`);
          assert.equal((device.body.keyRotations as unknown[]).length, 1, "recorded once");
        },
      );

      await t.step(
        "a release signed by the rotated release key installs; RESPONSEs under the device's new key are accepted",
        async () => {
          const firmware = crypto.getRandomValues(new Uint8Array(4096));
          const signed = await manifest(firmware, nextKey, 2);
          const upload = await fetch(
            `${service.apiUrl}/v1/artifacts?manifest=${encodeURIComponent(signed.toBase64())}`,
            {
              method: "POST",
              headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
              body: firmware,
            },
          );
          const { digest } = await upload.json();
          assert.equal(upload.status, 201);
          const done = await rollOutToAll(service, digest, POLICY);
          assert.equal((done.counts as Record<string, number>).activated, 2);
          for (const device of devices) {
            assert.deepEqual(await Deno.readFile(join(device.dir, "current")), firmware);
            assert.equal((await readState(device.dir))?.releaseKeySet?.version, 2);
          }
          const answered = frames.filter((f): f is { device: string; message: ResponseMessage } =>
            f.device === rotating.id && f.message.type === "response"
          );
          assert.ok(answered.length >= 2);
          for (const { message } of answered) assert.ok(await verifyMessage(message, newPublic));
        },
      );

      await t.step(
        "the old device key is refused now: a RESPONSE it signs is bad_signature",
        async () => {
          const before = await rejected("bad_signature");
          const old = await signMessage<ResponseMessage>({
            type: "response",
            version: 2,
            sequence: 1n << 62n,
            token: newToken(),
            status: 0,
            signature: new Uint8Array(),
          }, oldIdentity.privateKey);
          await listener.publish(serverTopic(service.serverId, rotating.id), encodeMessage(old));
          await until(
            "the rejection",
            async () => (await rejected("bad_signature")) > before ? true : undefined,
          );
        },
      );

      await t.step(
        "a replayed DEVICE_KEY and a downgrade to the old key are refused, counted",
        async () => {
          const proposal = frames.find((f) => f.message.type === "device_key")!
            .message as DeviceKeyMessage;
          const replays = await rejected("replay");
          await listener.publish(
            serverTopic(service.serverId, rotating.id),
            encodeMessage(proposal),
          );
          await until(
            "the replay",
            async () => (await rejected("replay")) > replays ? true : undefined,
          );
          const newPrivate = (await loadIdentity(rotating.dir)).privateKey;
          const downgrade = await signDeviceKey({
            oldPrivateKey: newPrivate,
            newPrivateKey: oldIdentity.privateKey,
            sequence: 1n << 62n,
            token: newToken(),
          });
          await listener.publish(
            serverTopic(service.serverId, rotating.id),
            encodeMessage(downgrade),
          );
          await until(
            "the downgrade refusal",
            async () => (await rejected("key_reused")) > 0 ? true : undefined,
          );
          const device = await api(service, "GET", `/v1/devices/${rotating.id}`);
          assert.equal(device.body.publicKey, newPublic.toBase64());
        },
      );

      await t.step(
        "the server alone cannot add a release key: its key set and manifest are refused (0xFB)",
        async () => {
          const serverKey = privateKeyFromPem(await Deno.readTextFile(join(dataDir, "server.key")));
          const target = devices[1]!;
          const madeUp = randomPrivateKey();
          const evil = new TextEncoder().encode("evil firmware");
          const before = frames.length;
          let sequence = 1n << 61n;
          const keySet = await signMessage<ReleaseKeysMessage>({
            type: "release_keys",
            version: 2,
            sequence: sequence++,
            target: uuidToBytes(target.id),
            token: newToken(),
            keySet: await signKeySet({ version: 3, keys: [await ed.getPublicKey(madeUp)] }, [
              madeUp,
              serverKey,
            ]),
            signature: new Uint8Array(),
          }, serverKey);
          await listener.publish(deviceTopic(target.id), encodeMessage(keySet));
          for (const key of [madeUp, rootKey]) {
            const initiate = await signMessage<InitiateMessage>({
              type: "initiate",
              version: 3,
              sequence: sequence++,
              target: uuidToBytes(target.id),
              token: newToken(),
              url: `${service.apiUrl}/artifacts/x`,
              digest: await sha256(evil),
              manifest: await manifest(evil, key, 9),
              notAfter: BigInt(Date.now() + 60_000),
              signature: new Uint8Array(),
            }, serverKey);
            await listener.publish(deviceTopic(target.id), encodeMessage(initiate));
          }
          const answers = await until("two answers", () => {
            const got = frames.slice(before).filter((f) =>
              f.device === target.id && f.message.type === "response"
            );
            return got.length >= 2 ? got : undefined;
          });
          // The made-up key, and the root key the rotation revoked.
          assert.deepEqual(
            answers.map((a) => (a.message as ResponseMessage).status),
            [UPDATE_REFUSED_UNSIGNED, UPDATE_REFUSED_UNSIGNED],
          );
          assert.equal(target.running.agent.rejections.get("key_set_refused"), 1);
          assert.equal((await readState(target.dir))?.releaseKeySet?.version, 2);
        },
      );

      await t.step(
        "a release signed by the revoked root key is refused by the server too",
        async () => {
          const old = crypto.getRandomValues(new Uint8Array(512));
          const signed = await manifest(old, rootKey, 3);
          const upload = await fetch(
            `${service.apiUrl}/v1/artifacts?manifest=${encodeURIComponent(signed.toBase64())}`,
            { method: "POST", headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: old },
          );
          const body = await upload.json();
          assert.equal(upload.status, 422, JSON.stringify(body));
          assert.equal(body.error.code, "invalid_manifest");
        },
      );
    } finally {
      await listener.close();
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
