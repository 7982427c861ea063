import assert from "node:assert/strict";
import { join } from "node:path";
import { connectMqtt, deviceTopic, serverTopic } from "../../mqtt/mod.ts";
import {
  decodeMessage,
  defaultEd25519,
  encodeMessage,
  type InitiateMessage,
  newToken,
  privateKeyFromPem,
  randomPrivateKey,
  type ReleaseManifest,
  type ResponseMessage,
  signManifest,
  signMessage,
  UPDATE_REFUSED_EXPIRED,
  UPDATE_REFUSED_ROLLBACK,
  UPDATE_REFUSED_UNSIGNED,
  uuidToBytes,
} from "../../srup/mod.ts";
import {
  ADMIN_TOKEN,
  api,
  rollOutToAll,
  startDevices,
  startTestService,
  type TestDevice,
  waitForRollout,
} from "./_service.ts";
import { sha256 } from "../device/_fixture.ts";
import { readState } from "../../device/mod.ts";

const SPEED = 120;
const POLICY = {
  name: "releases",
  stages: [{ percent: 100 }],
  retry: { attempts: 1 },
  failure: { maxPercent: 50, minDevices: 1, action: "abort" },
};

async function release(bytes: Uint8Array, securityVersion: number, key: Uint8Array) {
  const manifest: ReleaseManifest = {
    digest: await sha256(bytes),
    size: bytes.length,
    name: "fw",
    version: `1.${securityVersion}.0`,
    securityVersion,
    hardware: [],
  };
  return await signManifest(manifest, key);
}

/** Uploads bytes with their manifest (base64, as a query parameter); the digest. */
async function uploadSigned(
  apiUrl: string,
  bytes: Uint8Array,
  manifest?: Uint8Array,
): Promise<string> {
  const query = manifest ? `?manifest=${encodeURIComponent(manifest.toBase64())}` : "";
  const response = await fetch(`${apiUrl}/v1/artifacts${query}`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/octet-stream" },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  const json = await response.json();
  assert.equal(response.status, 201, JSON.stringify(json));
  return json.digest;
}

Deno.test({
  name:
    "signed releases end to end: installs, downgrade refused, online key alone cannot install, expired INITIATE refused",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const releaseKey = randomPrivateKey();
    const releasePub = await (await defaultEd25519()).getPublicKey(releaseKey);
    const dataDir = join(root, "data");
    const service = await startTestService(dataDir, {
      speed: SPEED,
      env: { FLOTILLA_RELEASE_KEYS: releasePub.toBase64() },
    });
    let devices: TestDevice[] = [];
    const replies: { device: string; message: ResponseMessage }[] = [];
    const listener = await connectMqtt(service.mqttUrl, { clean: true });
    try {
      devices = await startDevices(service, root, 3, { releaseKeys: [releasePub] });
      for (const device of devices) {
        await listener.subscribe(serverTopic(service.serverId, device.id));
      }
      listener.onMessage((topic, payload) => {
        const message = decodeMessage(payload);
        if (message.type === "response") {
          replies.push({ device: topic.split("/").at(-1)!, message });
        }
      });
      const v7 = crypto.getRandomValues(new Uint8Array(16 * 1024));

      await t.step("a release signed by the release key rolls out to every device", async () => {
        const digest = await uploadSigned(service.apiUrl, v7, await release(v7, 7, releaseKey));
        const done = await rollOutToAll(service, digest, POLICY);
        assert.equal((done.counts as Record<string, number>).activated, 3);
        for (const device of devices) {
          assert.deepEqual(await Deno.readFile(join(device.dir, "current")), v7);
          assert.equal((await readState(device.dir))?.current?.securityVersion, 7);
        }
        // The INITIATEs went out in version 3 (the ACTIVATEs, which carry no release, in 2).
        const received = replies.filter((r) => r.message.status === 0x00);
        assert.equal(received.length, 3);
        assert.ok(
          received.every((r) => r.message.version === 3),
          "INITIATEs answered in version 3",
        );
      });

      await t.step("the server refuses to roll out an artifact with no manifest", async () => {
        const unsigned = crypto.getRandomValues(new Uint8Array(1024));
        const digest = await uploadSigned(service.apiUrl, unsigned);
        const refused = await api(service, "POST", "/v1/rollouts", {
          artifact: { digest },
          policy: POLICY,
          targets: { all: true },
        });
        assert.equal(refused.status, 422);
        assert.equal((refused.body.error as { code: string }).code, "unsigned_artifact");
      });

      await t.step(
        "a downgrade to security version 5 is refused by every device (0xFA)",
        async () => {
          const v5 = crypto.getRandomValues(new Uint8Array(8 * 1024));
          const digest = await uploadSigned(service.apiUrl, v5, await release(v5, 5, releaseKey));
          const created = await api(service, "POST", "/v1/rollouts", {
            artifact: { digest },
            policy: POLICY,
            targets: { all: true },
          });
          assert.equal(created.status, 201, JSON.stringify(created.body));
          const id = created.body.id as string;
          const halted = await waitForRollout(service, id, (r) => r.state === "halted");
          assert.equal((halted.haltReason as { kind: string }).kind, "failure_threshold");
          const listed = await api(service, "GET", `/v1/rollouts/${id}/devices?state=failed`);
          const failed = listed.body.items as { lastStatus: number }[];
          assert.ok(failed.length >= 1);
          assert.ok(failed.every((d) => d.lastStatus === UPDATE_REFUSED_ROLLBACK));
          for (const device of devices) {
            assert.deepEqual(await Deno.readFile(join(device.dir, "current")), v7);
          }
        },
      );

      await t.step(
        "an attacker with the server (and its key) cannot install an unsigned file",
        async (t) => {
          const evil = new TextEncoder().encode("evil firmware");
          await t.step(
            "through the API, with a policy that allows unsigned artifacts",
            async () => {
              const digest = await uploadSigned(service.apiUrl, evil);
              const created = await api(service, "POST", "/v1/rollouts", {
                artifact: { digest },
                policy: { ...POLICY, name: "attacker", allowUnsigned: true },
                targets: { ids: [devices[0]!.id] },
              });
              assert.equal(created.status, 201, JSON.stringify(created.body));
              const id = created.body.id as string;
              await waitForRollout(service, id, (r) => r.state === "halted");
              const row = await api(service, "GET", `/v1/rollouts/${id}/devices`);
              assert.equal(
                (row.body.items as { lastStatus: number }[])[0]!.lastStatus,
                UPDATE_REFUSED_UNSIGNED,
              );
            },
          );
          await t.step(
            "with frames signed by the server key, one with a manifest of the attacker's own",
            async () => {
              const serverKey = privateKeyFromPem(
                await Deno.readTextFile(join(dataDir, "server.key")),
              );
              const device = devices[1]!;
              const before = replies.length;
              const digest = await sha256(evil);
              const fake = await release(evil, 99, randomPrivateKey());
              await publish(device.id, serverKey, {
                digest,
                url: `${service.apiUrl}/artifacts/x`,
                sequence: 1n << 62n,
              });
              await publish(device.id, serverKey, {
                digest,
                url: `${service.apiUrl}/artifacts/x`,
                sequence: (1n << 62n) + 1n,
                version: 3,
                manifest: fake,
                notAfter: BigInt(Date.now() + 60_000),
              });
              const answered = await until(
                () => replies.slice(before).filter((r) => r.device === device.id),
                2,
              );
              assert.deepEqual(answered.map((r) => r.message.status), [
                UPDATE_REFUSED_UNSIGNED,
                UPDATE_REFUSED_UNSIGNED,
              ]);
              assert.deepEqual(await Deno.readFile(join(device.dir, "current")), v7);
            },
          );
        },
      );

      await t.step("an INITIATE held back past its not-after is refused (0xF9)", async () => {
        const serverKey = privateKeyFromPem(await Deno.readTextFile(join(dataDir, "server.key")));
        const device = devices[2]!;
        const before = replies.length;
        const v8 = crypto.getRandomValues(new Uint8Array(1024));
        await publish(device.id, serverKey, {
          digest: await sha256(v8),
          url: `${service.apiUrl}/artifacts/x`,
          sequence: 1n << 62n,
          version: 3,
          manifest: await release(v8, 8, releaseKey),
          notAfter: BigInt(Date.now() - 60_000),
        });
        const [answer] = await until(
          () => replies.slice(before).filter((r) => r.device === device.id),
          1,
        );
        assert.equal(answer!.message.status, UPDATE_REFUSED_EXPIRED);
        assert.deepEqual(await Deno.readFile(join(device.dir, "current")), v7);
      });
    } finally {
      await listener.close();
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }

    /** Signs an INITIATE with `key` and publishes it straight to the device's topic. */
    async function publish(
      deviceId: string,
      key: Uint8Array,
      fields: Partial<InitiateMessage> & { digest: Uint8Array; url: string; sequence: bigint },
    ): Promise<void> {
      const message = await signMessage<InitiateMessage>({
        type: "initiate",
        version: 2,
        target: uuidToBytes(deviceId),
        token: newToken(),
        signature: new Uint8Array(),
        ...fields,
      }, key);
      await listener.publish(deviceTopic(deviceId), encodeMessage(message));
    }
  },
});

/** Polls until `get` returns at least `count` items, for up to 20 s. */
async function until<T>(get: () => T[], count: number): Promise<T[]> {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    const items = get();
    if (items.length >= count) return items;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`only ${get().length} of ${count} replies arrived`);
}
