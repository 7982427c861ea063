import assert from "node:assert/strict";
import { join } from "node:path";
import {
  api,
  corruptingFetch,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "./_service.ts";

// Policy time runs 120 times faster: canary's 10 minute bake takes 5 seconds.
const SPEED = 120;

async function stopAll(devices: TestDevice[]): Promise<void> {
  await Promise.all(devices.map((device) => device.running.close()));
}

Deno.test({
  name: "serve rolls canary.yaml out to 50 real device agents, and halts on a digest mismatch",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"), { speed: SPEED });
    let devices: TestDevice[] = [];
    try {
      // The last device's fetch corrupts the second artifact only.
      let corrupt = "";
      devices = await startDevices(service, root, 50, {
        fetchFor: (i) => i === 49 ? corruptingFetch(() => corrupt) : undefined,
      });

      await t.step("every device reaches activated and holds the artifact", async () => {
        const artifact = crypto.getRandomValues(new Uint8Array(64 * 1024));
        const digest = await upload(service, artifact);
        const created = await api(service, "POST", "/v1/rollouts", {
          artifact: { digest },
          policy: "canary",
          targets: { all: true },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const id = created.body.id as string;
        assert.deepEqual(created.body.policy, {
          name: "canary",
          sha256: (created.body.policy as { sha256: string }).sha256,
          commit: (created.body.policy as { commit: string | null }).commit,
        });
        assert.match((created.body.policy as { sha256: string }).sha256, /^[0-9a-f]{64}$/);
        const waiting = await waitForRollout(service, id, (r) => r.state === "waiting_approval");
        assert.equal(waiting.stage, 2);
        const promoted = await api(service, "POST", `/v1/rollouts/${id}/promote`);
        assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
        const again = await api(service, "POST", `/v1/rollouts/${id}/promote`);
        assert.equal(again.status, 409);
        const done = await waitForRollout(service, id, (r) => r.state === "completed");
        assert.equal((done.counts as Record<string, number>).activated, 50);
        for (const device of devices) {
          assert.deepEqual(await Deno.readFile(join(device.dir, "current")), artifact);
          const detail = await api(service, "GET", `/v1/devices/${device.id}`);
          assert.equal(detail.body.currentDigest, digest);
        }
      });

      await t.step("a second rollout halts when one device reports 0xFF", async () => {
        const artifact = crypto.getRandomValues(new Uint8Array(32 * 1024));
        const digest = await upload(service, artifact);
        corrupt = digest;
        const bad = devices[49]!.id;
        const ids = [bad, ...devices.slice(0, 49).map((d) => d.id)];
        const created = await api(service, "POST", "/v1/rollouts", {
          artifact: { digest },
          policy: "canary",
          targets: { ids },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const id = created.body.id as string;
        const halted = await waitForRollout(service, id, (r) => r.state === "halted");
        const reason = halted.haltReason as { message: string; device: string; status: number };
        assert.equal(reason.device, bad);
        assert.equal(reason.status, 0xff);
        assert.match(reason.message, /Digest mismatch/);
        // Stage 1 is the bad device alone: nobody else was sent anything.
        const counts = halted.counts as Record<string, number>;
        assert.equal(counts.pending, 49);
        const listed = await api(service, "GET", `/v1/rollouts/${id}/devices?state=pending`);
        assert.equal((listed.body.items as unknown[]).length, 49);
        for (const device of devices.slice(0, 49)) {
          assert.notDeepEqual(await Deno.readFile(join(device.dir, "current")), artifact);
        }
      });
    } finally {
      await stopAll(devices);
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
