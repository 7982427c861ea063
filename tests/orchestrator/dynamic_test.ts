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

const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

type Counts = Record<string, number>;
interface RolloutDeviceItem {
  deviceId: string;
  position: number;
  state: string;
  token: string | null;
  attempt: number;
}

Deno.test({
  name:
    "a dynamic rollout takes devices registered or re-tagged to match while it runs, in its last stage",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"), { speed: 60 });
    const devices: TestDevice[] = [];
    const start = async (name: string, count: number, tags: Record<string, string>) => {
      const started = await startDevices(service, join(root, name), count, { tagsFor: () => tags });
      devices.push(...started);
      return started;
    };
    const retag = async (id: string, tags: Record<string, string>) => {
      const reply = await api(service, "PATCH", `/v1/devices/${id}`, { tags });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
    };
    try {
      const [a, b] = await start("first", 2, { site: "north" }) as [TestDevice, TestDevice];
      const [updated, other] = await start("others", 2, { site: "south" }) as [
        TestDevice,
        TestDevice,
      ];
      const digest = await upload(service, crypto.getRandomValues(new Uint8Array(2048)));
      // `updated` runs the artifact already, from an earlier rollout of it alone.
      const earlier = await api(service, "POST", "/v1/rollouts", {
        artifact: { digest },
        policy: "fast",
        targets: { ids: [updated.id] },
      });
      assert.equal(earlier.status, 201, JSON.stringify(earlier.body));
      await waitForRollout(service, earlier.body.id as string, (r) => r.state === "completed");

      const created = await api(service, "POST", "/v1/rollouts", {
        artifact: { digest },
        policy: {
          name: "dynamic",
          stages: [{ percent: 50, approval: "manual" }, { percent: 100 }],
          dynamic: true,
        },
        targets: { tags: { site: "north" } },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.dynamic, true);
      const id = created.body.id as string;
      await waitForRollout(service, id, (r) => r.state === "waiting_approval");

      let late: TestDevice;
      await t.step("registered mid-rollout over the API: it joins the last stage", async () => {
        [late] = await start("late", 1, { site: "north" }) as [TestDevice];
        const rollout = (await api(service, "GET", `/v1/rollouts/${id}`)).body;
        assert.equal(rollout.devices, 3);
        assert.equal(rollout.joined, 1);
        const stages = rollout.stages as { devices: number; pending: number }[];
        assert.deepEqual(stages.map((s) => [s.devices, s.pending]), [[1, 0], [2, 2]]);
      });
      await t.step(
        "re-tagged to match: one joins, one already on the artifact is skipped",
        async () => {
          await retag(other.id, { site: "north" });
          await retag(updated.id, { site: "north", floor: "2" });
          const rollout = (await api(service, "GET", `/v1/rollouts/${id}`)).body;
          assert.equal(rollout.devices, 5);
          assert.equal(rollout.joined, 3);
          assert.equal((rollout.counts as Counts).skipped, 1);
          assert.equal((rollout.counts as Counts).pending, 3);
        },
      );
      await t.step("a device already in it is not added twice", async () => {
        await retag(late!.id, { site: "north", moved: "yes" });
        await retag(a.id, { site: "north", moved: "yes" });
        const rollout = (await api(service, "GET", `/v1/rollouts/${id}`)).body;
        assert.equal(rollout.devices, 5);
      });
      await t.step(
        "promoted: every joined device is INITIATEd and activated, and counted",
        async () => {
          assert.equal((await api(service, "POST", `/v1/rollouts/${id}/promote`)).status, 200);
          const done = await waitForRollout(service, id, (r) => r.state === "completed");
          assert.equal(done.devices, 5);
          assert.deepEqual(
            [(done.counts as Counts).activated, (done.counts as Counts).skipped],
            [4, 1],
          );
          const rows = await api<{ items: RolloutDeviceItem[] }>(
            service,
            "GET",
            `/v1/rollouts/${id}/devices`,
          );
          const byId = new Map(rows.body.items.map((row) => [row.deviceId, row]));
          assert.deepEqual(rows.body.items.map((row) => row.position), [0, 1, 2, 3, 4]);
          for (const device of [b, late!, other]) {
            const row = byId.get(device.id)!;
            assert.equal(row.state, "activated");
            assert.equal(row.attempt, 1);
            assert.ok(row.token, "an INITIATE carried a token");
            assert.equal(device.running.agent.status().current, digest);
          }
          const skipped = byId.get(updated.id)!;
          assert.deepEqual([skipped.state, skipped.token], ["skipped", null], "never contacted");
          const events = await api<{ items: { type: string; deviceId: string | null }[] }>(
            service,
            "GET",
            `/v1/rollouts/${id}/events?limit=1000`,
          );
          const joined = events.body.items.filter((e) => e.type === "rollout.device.joined");
          assert.deepEqual(
            joined.map((e) => e.deviceId).sort(),
            [late!.id, other.id, updated.id].sort(),
          );
        },
      );
      await t.step("a completed rollout stays completed: a new match does not join", async () => {
        const [after] = await start("after", 1, { site: "north" }) as [TestDevice];
        const rollout = (await api(service, "GET", `/v1/rollouts/${id}`)).body;
        assert.equal(rollout.state, "completed");
        assert.equal(rollout.devices, 5);
        const detail = await api(service, "GET", `/v1/devices/${after.id}`);
        assert.deepEqual(detail.body.history, []);
      });
    } finally {
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "devices that joined stay in the last stage across a restart",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const dataDir = join(root, "data");
    let service = await startTestService(dataDir);
    const register = async (tags: Record<string, string>) => {
      const id = crypto.randomUUID();
      const reply = await api(service, "POST", "/v1/devices", { id, publicKey: KEY, tags });
      assert.equal(reply.status, 201, JSON.stringify(reply.body));
      return id;
    };
    const stages = async (id: string) => {
      const rollout = (await api(service, "GET", `/v1/rollouts/${id}`)).body;
      return [
        rollout.devices,
        rollout.joined,
        (rollout.stages as { devices: number }[]).map((s) => s.devices),
      ];
    };
    try {
      await register({ site: "north" });
      await register({ site: "north" });
      const created = await api(service, "POST", "/v1/rollouts", {
        artifact: { url: "https://files.example/fw.bin", digest: "d".repeat(64) },
        // No device answers: the first stage stays in flight for the hour.
        policy: {
          name: "dynamic",
          stages: [{ percent: 50 }, { percent: 100 }],
          timeouts: { response: "1h" },
          dynamic: true,
        },
        targets: { tags: { site: "north" } },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      await register({ site: "north" });
      // Three devices split 50% as [2, 3]: the joined third must stay out of the first stage.
      assert.deepEqual(await stages(id), [3, 1, [1, 2]]);
      await service.close();
      service = await startTestService(dataDir);
      assert.equal((await api(service, "GET", `/v1/rollouts/${id}`)).body.state, "running");
      assert.deepEqual(await stages(id), [3, 1, [1, 2]]);
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
