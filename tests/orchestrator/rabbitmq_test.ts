import assert from "node:assert/strict";
import { join } from "node:path";
import { RABBITMQ_MQTT_URL } from "../mqtt/_brokers.ts";
import {
  api,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "./_service.ts";

Deno.test({
  name: `serve rolls an update out to device agents over RabbitMQ's MQTT plugin (3.1.1)${
    RABBITMQ_MQTT_URL ? "" : " (ignored: FLOTILLA_TEST_RABBITMQ_MQTT_URL is unset)"
  }`,
  ignore: RABBITMQ_MQTT_URL === undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"), {
      env: { MQTT_URL: RABBITMQ_MQTT_URL! },
    });
    let devices: TestDevice[] = [];
    try {
      devices = await startDevices(service, root, 5);
      const artifact = crypto.getRandomValues(new Uint8Array(16 * 1024));
      const digest = await upload(service, artifact);
      const created = await api(service, "POST", "/v1/rollouts", {
        artifact: { digest },
        policy: "fast",
        targets: { ids: devices.map((device) => device.id) },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const done = await waitForRollout(
        service,
        created.body.id as string,
        (r) => r.state === "completed",
      );
      assert.equal((done.counts as Record<string, number>).activated, 5);
      for (const device of devices) {
        assert.deepEqual(await Deno.readFile(join(device.dir, "current")), artifact);
      }
    } finally {
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
