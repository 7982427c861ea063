import assert from "node:assert/strict";
import { join } from "node:path";
import { provisionDevice } from "../../device/mod.ts";
import { MOSQUITTO_MISSING, startMosquitto } from "../mqtt/_mosquitto.ts";
import {
  api,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "./_service.ts";

const DEVICES = 24;

// Short waits, so a frame lost with the broker is retried within seconds.
const POLICY = `name: restart
stages:
  - percent: 25
  - percent: 100
concurrency: 4
success: { minPercent: 100 }
retry: { attempts: 10, backoff: 300ms, maxBackoff: 1s, on: [fc, fd, fe, timeout] }
timeouts: { response: 2s, activation: 2s }
activation: immediate
`;

Deno.test({
  name: "a rollout on Mosquitto with persistence completes across two broker restarts",
  ignore: MOSQUITTO_MISSING !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const policyDir = join(root, "policies");
    await Deno.mkdir(policyDir);
    await Deno.writeTextFile(join(policyDir, "restart.yaml"), POLICY);
    const mosquitto = await startMosquitto();
    const service = await startTestService(join(root, "data"), {
      env: { MQTT_URL: mosquitto.url, FLOTILLA_POLICY_DIR: policyDir },
    });
    let devices: TestDevice[] = [];
    try {
      devices = await startDevices(service, root, DEVICES);
      const digest = await upload(service, crypto.getRandomValues(new Uint8Array(8 * 1024)));
      const created = await api(service, "POST", "/v1/rollouts", {
        artifact: { digest },
        policy: "restart",
        targets: { all: true },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      const activated = (r: Record<string, unknown>) =>
        (r.counts as Record<string, number>).activated ?? 0;

      // Restart while devices are in flight: once a few are done, and again halfway.
      for (const after of [2, DEVICES / 2]) {
        const before = await waitForRollout(service, id, (r) => activated(r) >= after);
        assert.ok(activated(before) < DEVICES, "the restart comes before the end");
        await mosquitto.restart();
      }
      const done = await waitForRollout(
        service,
        id,
        (r) => ["completed", "halted", "cancelled"].includes(r.state as string),
        90_000,
      );
      assert.equal(done.state, "completed", JSON.stringify(done));
      assert.equal(activated(done), DEVICES);
    } finally {
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await mosquitto.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

const SILENT_POLICY = `name: silent
stages:
  - percent: 100
retry: { attempts: 3, backoff: 100ms, maxBackoff: 100ms, on: [timeout] }
timeouts: { response: 1s, activation: 1s }
`;

Deno.test({
  name: "serve reports RESPONSEs stalled on /metrics and in its log when devices time out unheard",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const policyDir = join(root, "policies");
    await Deno.mkdir(policyDir);
    await Deno.writeTextFile(join(policyDir, "silent.yaml"), SILENT_POLICY);
    const lines: string[] = [];
    const service = await startTestService(join(root, "data"), {
      env: { FLOTILLA_POLICY_DIR: policyDir },
      log: (line) => lines.push(line),
    });
    async function metric(name: string): Promise<string | undefined> {
      const text = await (await fetch(`${service.apiUrl}/metrics`)).text();
      return text.split("\n").find((line) => line.startsWith(`${name} `))?.split(" ")[1];
    }
    try {
      assert.equal(await metric("flotilla_responses_stalled"), "0");
      // Registered, but its agent never runs: nothing ever answers.
      const identity = await provisionDevice(join(root, "device"));
      const registered = await api(service, "POST", "/v1/devices", {
        id: identity.id,
        publicKey: identity.publicKey.toBase64(),
      });
      assert.equal(registered.status, 201);
      const digest = await upload(service, crypto.getRandomValues(new Uint8Array(1024)));
      const created = await api(service, "POST", "/v1/rollouts", {
        artifact: { digest },
        policy: "silent",
        targets: { all: true },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const deadline = Date.now() + 30_000;
      while (await metric("flotilla_responses_stalled") !== "1") {
        assert.ok(Date.now() < deadline, "no stall reported");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(Number(await metric("flotilla_response_silent_timeouts_total")) >= 1);
      const stalled = lines.filter((line) => line.includes("RESPONSEs stalled"));
      assert.equal(stalled.length, 1, lines.join("\n"));
      assert.match(stalled[0]!, new RegExp(`${identity.id} timed out after 1000 ms`));
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
