import assert from "node:assert/strict";
import { join } from "node:path";
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
