import assert from "node:assert/strict";
import { join } from "node:path";
import {
  api,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "./_service.ts";

Deno.test({
  name:
    "a device that already runs the artifact is skipped: counted, never contacted, rollback kept",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"), { speed: 60 });
    let devices: TestDevice[] = [];
    const rollout = async (digest: string, ids: string[]) => {
      const created = await api(service, "POST", "/v1/rollouts", {
        artifact: { digest },
        policy: "fast",
        targets: { ids },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return await waitForRollout(
        service,
        created.body.id as string,
        (r) => r.state === "completed",
      );
    };
    try {
      devices = await startDevices(service, root, 2);
      const [a, b] = devices as [TestDevice, TestDevice];
      const y = await upload(service, crypto.getRandomValues(new Uint8Array(4096)));
      const x = await upload(service, crypto.getRandomValues(new Uint8Array(4096)));
      await rollout(y, [a.id]);
      await rollout(x, [a.id]);
      const done = await rollout(x, [a.id, b.id]);
      const counts = done.counts as Record<string, number>;
      assert.equal(counts.skipped, 1);
      assert.equal(counts.activated, 1);
      const rows = await api<
        { items: { deviceId: string; state: string; token: string | null }[] }
      >(
        service,
        "GET",
        `/v1/rollouts/${done.id}/devices`,
      );
      const row = rows.body.items.find((item) => item.deviceId === a.id)!;
      assert.deepEqual([row.state, row.token], ["skipped", null], "never contacted");
      const detail = await api(service, "GET", `/v1/devices/${a.id}`);
      assert.deepEqual([detail.body.currentDigest, detail.body.previousDigest], [x, y]);
      assert.deepEqual(a.running.agent.status().previous, y, "the device keeps its rollback copy");
    } finally {
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
