import assert from "node:assert/strict";
import { join } from "node:path";
import { startDevice } from "../../device/mod.ts";
import { fromBase64, keyFingerprint } from "../../srup/mod.ts";
import {
  ADMIN_TOKEN,
  api,
  rollOutToAll,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "./_service.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

// Two stages; a device that does not answer in 2 s fails (one attempt), and half a stage is enough.
const ROTATE_POLICY = {
  name: "rotate",
  stages: [{ percent: 50 }, { percent: 100 }],
  success: { minPercent: 50 },
  retry: { attempts: 1 },
  timeouts: { response: "2s" },
};
const UPDATE_POLICY = { name: "halves", stages: [{ percent: 50 }, { percent: 100 }] };

/** Runs `ctl` against the service. */
async function ctl(apiUrl: string, args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "ctl", "--api", apiUrl, "--token", ADMIN_TOKEN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

interface ServerBody {
  serverId: string;
  currentKey: { fingerprint: string; publicKey: string };
  nextKey: { fingerprint: string; publicKey: string } | null;
  keys: { fingerprint: string; role: string; devices: number }[];
  rotation: { rollout: string; state: string } | null;
}

Deno.test({
  name:
    "a server key rotation over MQTT: staged, one device offline catches up later, then an update signed by the new key reaches every real agent",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    let devices: TestDevice[] = [];
    try {
      devices = await startDevices(service, root, 4);
      const before = (await api<ServerBody>(service, "GET", "/v1/server")).body;
      const oldKey = fromBase64(service.publicKey);
      const offline = devices[3]!;

      await t.step("before any rotation: every device on the current key, no next key", () => {
        assert.equal(before.currentKey.fingerprint, keyFingerprint(oldKey));
        assert.equal(before.serverId, keyFingerprint(oldKey));
        assert.equal(before.nextKey, null);
        assert.deepEqual(before.keys, [
          { fingerprint: before.currentKey.fingerprint, role: "current", devices: 4 },
        ]);
      });

      let nextFingerprint = "";
      await t.step(
        "a staged rotation moves the three online devices; the offline one fails its stage slot",
        async () => {
          await offline.running.close();
          const created = await api(service, "POST", "/v1/server/rotate-key", {
            policy: ROTATE_POLICY,
          });
          assert.equal(created.status, 201, JSON.stringify(created.body));
          assert.equal(created.body.action, "rotate-key");
          assert.equal(created.body.artifact, null);
          nextFingerprint = created.body.serverKey as string;
          assert.match(nextFingerprint, /^[0-9a-f]{16}$/);
          // One key rotation at a time.
          const again = await api(service, "POST", "/v1/server/rotate-key", {});
          assert.equal(again.status, 409, JSON.stringify(again.body));
          assert.equal((again.body.error as { code: string }).code, "rotation_running");
          const done = await waitForRollout(
            service,
            created.body.id as string,
            (r) => r.state === "completed",
          );
          const counts = done.counts as Record<string, number>;
          assert.equal(counts.activated, 3);
          assert.equal(counts.failed, 1);
          const server = (await api<ServerBody>(service, "GET", "/v1/server")).body;
          assert.equal(server.nextKey?.fingerprint, nextFingerprint);
          assert.equal(server.serverId, before.serverId);
          assert.equal(server.rotation, null);
          assert.deepEqual(
            server.keys.toSorted((a, b) => a.role.localeCompare(b.role)),
            [
              { fingerprint: before.currentKey.fingerprint, role: "current", devices: 1 },
              { fingerprint: nextFingerprint, role: "next", devices: 3 },
            ],
          );
          const nextKey = fromBase64(server.nextKey!.publicKey);
          for (const device of devices.slice(0, 3)) {
            assert.deepEqual(device.running.agent.serverKey(), nextKey);
            const detail = await api(service, "GET", `/v1/devices/${device.id}`);
            assert.equal(detail.body.serverKey, nextFingerprint);
          }
          const left = await api(service, "GET", `/v1/devices/${offline.id}`);
          assert.equal(left.body.serverKey, null);
        },
      );

      await t.step(
        "back online, the offline device is caught up by ctl server rotate-key; the others are skipped",
        async () => {
          offline.running = await startDevice({
            dir: offline.dir,
            serverKey: oldKey,
            broker: service.mqttUrl,
            serverId: service.serverId,
          });
          const created = await ctl(service.apiUrl, ["--json", "server", "rotate-key"]);
          assert.equal(created.code, 0, created.stderr);
          const rollout = JSON.parse(created.stdout);
          assert.equal(rollout.action, "rotate-key");
          assert.equal(rollout.serverKey, nextFingerprint);
          const done = await waitForRollout(service, rollout.id, (r) => r.state === "completed");
          assert.deepEqual(
            [
              (done.counts as Record<string, number>).activated,
              (done.counts as Record<string, number>).skipped,
            ],
            [1, 3],
          );
          const server = await ctl(service.apiUrl, ["server"]);
          assert.equal(server.code, 0, server.stderr);
          assert.match(server.stdout, new RegExp(`${nextFingerprint} +next +4`));
          assert.match(server.stdout, new RegExp(`${before.currentKey.fingerprint} +current +0`));
          const detail = await api(service, "GET", `/v1/devices/${offline.id}`);
          assert.equal(detail.body.serverKey, nextFingerprint);
          // Nothing left to rotate.
          const nothing = await api(service, "POST", "/v1/server/rotate-key", {});
          assert.equal(nothing.status, 422, JSON.stringify(nothing.body));
          assert.equal((nothing.body.error as { code: string }).code, "nothing_to_rotate");
        },
      );

      await t.step(
        "an update rollout, signed by the new key, succeeds on every device",
        async () => {
          const firmware = crypto.getRandomValues(new Uint8Array(16 * 1024));
          const digest = await upload(service, firmware);
          const done = await rollOutToAll(service, digest, UPDATE_POLICY);
          assert.equal((done.counts as Record<string, number>).activated, 4);
          for (const device of devices) {
            assert.deepEqual(await Deno.readFile(join(device.dir, "current")), firmware);
            // With no overlap (keyOverlap 0), nothing the old key signs is obeyed any more.
            assert.notDeepEqual(device.running.agent.serverKey(), oldKey);
          }
        },
      );

      await t.step("bad bodies are refused with what is wrong", async () => {
        const unknown = await api(service, "POST", "/v1/server/rotate-key", { key: "x" });
        assert.equal(unknown.status, 400, JSON.stringify(unknown.body));
        const policy = await api(service, "POST", "/v1/server/rotate-key", {
          policy: { ...ROTATE_POLICY, keyOverlap: "60d" },
        });
        assert.equal(policy.status, 422, JSON.stringify(policy.body));
        const error = policy.body.error as { code: string; message: string };
        assert.equal(error.code, "inconsistent_policy");
        assert.match(error.message, /keyOverlap: Duration "60d" exceeds 24d/);
        const none = await api(service, "POST", "/v1/server/rotate-key", {
          targets: { tags: { site: "nowhere" } },
        });
        assert.equal(none.status, 422, JSON.stringify(none.body));
        assert.equal((none.body.error as { code: string }).code, "no_devices");
      });
    } finally {
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a key rotation survives a restart of the service: it resumes with the same next key and server id, and frames to confirmed devices stay signed by it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const dataDir = join(root, "data");
    let service = await startTestService(dataDir);
    let devices: TestDevice[] = [];
    try {
      devices = await startDevices(service, root, 2);
      const [early, late] = devices as [TestDevice, TestDevice];
      const oldKey = fromBase64(service.publicKey);
      await late.running.close();
      const created = await api(service, "POST", "/v1/server/rotate-key", {
        policy: {
          name: "patient",
          stages: [{ percent: 100 }],
          retry: { attempts: 20, backoff: "500ms", maxBackoff: "500ms" },
          timeouts: { response: "2s" },
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      const next = created.body.serverKey as string;
      const serverId = service.serverId;

      await t.step("one device confirms, then the service stops mid-rotation", async () => {
        const until = Date.now() + 30_000;
        while ((await api(service, "GET", `/v1/devices/${early.id}`)).body.serverKey !== next) {
          if (Date.now() > until) throw new Error("the online device never confirmed");
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        await early.running.close();
        await service.close();
      });
      await t.step("restarted, it resumes the rotation with the same key and id", async () => {
        service = await startTestService(dataDir);
        assert.equal(service.serverId, serverId);
        const server = (await api<ServerBody>(service, "GET", "/v1/server")).body;
        assert.equal(server.nextKey?.fingerprint, next);
        assert.deepEqual(server.rotation, { rollout: id, state: "running" });
        for (const device of devices) {
          device.running = await startDevice({
            dir: device.dir,
            serverKey: oldKey,
            broker: service.mqttUrl,
            serverId: service.serverId,
          });
        }
        const done = await waitForRollout(service, id, (r) => r.state === "completed");
        assert.equal((done.counts as Record<string, number>).activated, 2);
      });
      await t.step(
        "an update after the restart is signed by the key each device trusts",
        async () => {
          const firmware = crypto.getRandomValues(new Uint8Array(4096));
          const digest = await upload(service, firmware);
          const update = await api(service, "POST", "/v1/rollouts", {
            artifact: { digest },
            policy: UPDATE_POLICY,
            targets: { all: true },
          });
          assert.equal(update.status, 201, JSON.stringify(update.body));
          const done = await waitForRollout(
            service,
            update.body.id as string,
            (r) => r.state === "completed",
          );
          assert.equal((done.counts as Record<string, number>).activated, 2);
          for (const device of devices) {
            assert.equal(device.running.agent.rejections.get("bad_signature"), 0);
            assert.deepEqual(await Deno.readFile(join(device.dir, "current")), firmware);
          }
        },
      );
    } finally {
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
