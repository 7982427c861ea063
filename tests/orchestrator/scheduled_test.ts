import assert from "node:assert/strict";
import { join } from "node:path";
import { connectMqtt, deviceTopic } from "../../mqtt/mod.ts";
import { SimClock } from "../../sim/mod.ts";
import { decodeMessage } from "../../srup/mod.ts";
import {
  api,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "./_service.ts";
import type { Service } from "../../app/service.ts";

const HOUR = 3_600_000;
const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/** Every SRUP frame the service publishes to `devices`, by type. */
async function listen(service: Service, devices: string[]) {
  const frames: string[] = [];
  const connection = await connectMqtt(service.mqttUrl, {
    clientId: `scheduled-test-${crypto.randomUUID()}`,
    onMessage: (_topic, payload) => frames.push(decodeMessage(payload).type),
  });
  for (const id of devices) await connection.subscribe(deviceTopic(id));
  return { frames, close: () => connection.close() };
}

async function register(service: Service, tags: Record<string, string> = {}): Promise<string> {
  const id = crypto.randomUUID();
  const reply = await api(service, "POST", "/v1/devices", { id, publicKey: KEY, tags });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return id;
}

Deno.test({
  name: "a scheduled rollout is listed scheduled, sends nothing, and is cancelled before its start",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    const device = await register(service);
    const listener = await listen(service, [device]);
    const artifact = { url: "https://files.example/fw.bin", digest: "a".repeat(64) };
    const startAt = new Date(Date.now() + HOUR).toISOString();
    try {
      const created = await api(service, "POST", "/v1/rollouts", {
        artifact,
        policy: "fast",
        targets: { ids: [device] },
        startAt,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      await t.step("created scheduled, with its start time, listed and shown as such", async () => {
        assert.equal(created.body.state, "scheduled");
        assert.equal(created.body.startAt, startAt);
        const listed = await api<{ items: { id: string; state: string; startAt: string }[] }>(
          service,
          "GET",
          "/v1/rollouts?state=scheduled",
        );
        assert.deepEqual(
          listed.body.items.map((r) => [r.id, r.state, r.startAt]),
          [[id, "scheduled", startAt]],
        );
        const shown = await api<{ counts: Record<string, number>; devices: number }>(
          service,
          "GET",
          `/v1/rollouts/${id}`,
        );
        assert.equal(shown.body.counts.pending, 1);
        assert.equal(shown.body.devices, 1);
      });
      await t.step("its devices are taken: another rollout of them is refused", async () => {
        const other = await api(service, "POST", "/v1/rollouts", {
          artifact,
          policy: "fast",
          targets: { ids: [device] },
        });
        assert.equal(other.status, 409, JSON.stringify(other.body));
        assert.equal((other.body as { error: { code: string } }).error.code, "devices_busy");
      });
      await t.step("pause, resume and promote answer 409 scheduled", async () => {
        for (const command of ["pause", "resume", "promote"]) {
          const refused = await api<{ error: { code: string; message: string } }>(
            service,
            "POST",
            `/v1/rollouts/${id}/${command}`,
          );
          assert.equal(refused.status, 409);
          assert.equal(refused.body.error.code, "scheduled");
          assert.match(refused.body.error.message, /it is "scheduled"/);
        }
      });
      await t.step("cancelled: no frame was ever published", async () => {
        const cancelled = await api(service, "POST", `/v1/rollouts/${id}/cancel`);
        assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
        assert.equal(cancelled.body.state, "cancelled");
        const events = await api<{ items: { type: string }[] }>(
          service,
          "GET",
          `/v1/rollouts/${id}/events`,
        );
        const types = events.body.items.map((e) => e.type);
        assert.deepEqual(types.sort(), ["operator.cancel", "rollout.cancelled", "rollout.created"]);
        // The broker delivers in order: a frame published before this probe would be here by now.
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.deepEqual(listener.frames, []);
        const again = await api(service, "POST", `/v1/rollouts/${id}/cancel`);
        assert.equal(again.status, 409);
      });
    } finally {
      await listener.close();
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "a start time is refused with a reason: not a date, no offset, no such day, in the past",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    try {
      const device = await register(service, { site: "a" });
      const artifact = { url: "https://files.example/fw.bin", digest: "b".repeat(64) };
      const create = (fields: Record<string, unknown>) =>
        api<{ error: { code: string; message: string } }>(service, "POST", "/v1/rollouts", {
          artifact,
          policy: "fast",
          targets: { ids: [device] },
          ...fields,
        });
      const cases: [Record<string, unknown>, number, string, RegExp][] = [
        [{ startAt: "next sunday" }, 422, "invalid_start_at", /expected an ISO 8601 date and time/],
        [{ startAt: "2030-12-06T02:00:00" }, 422, "invalid_start_at", /give a UTC offset or Z/],
        [{ startAt: 5 }, 400, "invalid_request", /"startAt"/],
        [{ startAt: "2030-02-30T02:00:00Z" }, 422, "invalid_start_at", /no such day/],
        [{ startAt: "2020-12-06T02:00:00Z" }, 422, "start_in_past", /is in the past/],
        [
          { policy: { name: "p", stages: [{ percent: 100 }], startAt: "2030-12-06T02:00" } },
          400,
          "invalid_policy",
          /startAt: Invalid start time "2030-12-06T02:00": give a UTC offset or Z/,
        ],
        [
          { policy: { name: "p", stages: [{ percent: 100 }], startAt: "2020-01-01T00:00:00Z" } },
          422,
          "start_in_past",
          /"2020-01-01T00:00:00Z" is in the past/,
        ],
        [
          { policy: { name: "p", stages: [{ percent: 100 }], dynamic: true } },
          422,
          "dynamic_ids",
          /A dynamic policy needs "tags" or "all" targets/,
        ],
      ];
      for (const [fields, status, code, message] of cases) {
        const refused = await create(fields);
        assert.equal(refused.status, status, JSON.stringify([fields, refused.body]));
        assert.equal(refused.body.error.code, code, JSON.stringify(refused.body));
        assert.match(refused.body.error.message, message);
      }
      const listed = await api<{ items: unknown[] }>(service, "GET", "/v1/rollouts");
      assert.equal(listed.body.items.length, 0, "nothing was written");
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a scheduled rollout starts by itself at its time; after a restart, one whose time passed starts and one still to come waits",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const dataDir = join(root, "data");
    const start = Date.now();
    let clock = new SimClock(start);
    let service = await startTestService(dataDir, { clock });
    let devices: TestDevice[] = [];
    try {
      devices = await startDevices(service, root, 3);
      const [a, b, c] = devices as [TestDevice, TestDevice, TestDevice];
      const digest = await upload(service, crypto.getRandomValues(new Uint8Array(1024)));
      const schedule = async (ids: string[], at: number) => {
        const created = await api(service, "POST", "/v1/rollouts", {
          artifact: { digest },
          policy: { name: "now", stages: [{ percent: 100 }] },
          targets: { ids },
          startAt: new Date(at).toISOString(),
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        assert.equal(created.body.state, "scheduled");
        return created.body.id as string;
      };
      const first = await schedule([a.id], start + HOUR);
      await t.step("on the injected clock: not a millisecond early, then by itself", async () => {
        clock.advance(HOUR - 1);
        await service.orchestrator.idle();
        assert.equal((await api(service, "GET", `/v1/rollouts/${first}`)).body.state, "scheduled");
        assert.equal(a.running.agent.status().current, null, "nothing sent yet");
        clock.advance(1);
        await service.orchestrator.idle();
        const done = await waitForRollout(service, first, (r) => r.state === "completed");
        assert.equal((done.counts as Record<string, number>).activated, 1);
        assert.equal(a.running.agent.status().current, digest);
      });
      const due = await schedule([b.id], start + 2 * HOUR);
      const later = await schedule([c.id], start + 4 * HOUR);
      await service.close();
      await t.step(
        "restarted after one's time: it starts on recovery, the other waits",
        async () => {
          clock = new SimClock(start + 3 * HOUR);
          service = await startTestService(dataDir, { clock });
          await service.orchestrator.idle();
          // The agents still listen on the first service's broker: an INITIATE recorded is the start.
          const started = (r: Record<string, unknown>) =>
            r.state === "running" && (r.counts as Record<string, number>).initiated === 1;
          await waitForRollout(service, due, started);
          const waiting = await api(service, "GET", `/v1/rollouts/${later}`);
          assert.equal(waiting.body.state, "scheduled");
          assert.equal(waiting.body.startAt, new Date(start + 4 * HOUR).toISOString());
          assert.equal((waiting.body.counts as Record<string, number>).initiated, 0);
          clock.advance(HOUR);
          await service.orchestrator.idle();
          await waitForRollout(service, later, started);
        },
      );
    } finally {
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "a dynamic rollout takes devices that match while it is scheduled, and starts with them",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const start = Date.now();
    const clock = new SimClock(start);
    const service = await startTestService(join(root, "data"), { clock });
    try {
      await register(service, { site: "north" });
      const created = await api(service, "POST", "/v1/rollouts", {
        artifact: { url: "https://files.example/fw.bin", digest: "c".repeat(64) },
        policy: { name: "later", stages: [{ percent: 50 }, { percent: 100 }], dynamic: true },
        targets: { tags: { site: "north" } },
        startAt: new Date(start + HOUR).toISOString(),
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      await register(service, { site: "north" });
      await register(service, { site: "south" });
      const scheduled = (await api(service, "GET", `/v1/rollouts/${id}`)).body;
      assert.deepEqual(
        [scheduled.state, scheduled.devices, scheduled.joined],
        ["scheduled", 2, 1],
      );
      assert.deepEqual((scheduled.stages as { devices: number }[]).map((s) => s.devices), [1, 1]);
      clock.advance(HOUR);
      await service.orchestrator.idle();
      // No agent answers: the first stage's device is INITIATEd, the joined one waits in the last.
      const running = await waitForRollout(
        service,
        id,
        (r) => (r.counts as Record<string, number>).initiated === 1,
      );
      assert.equal(running.state, "running");
      assert.equal(running.devices, 2);
      assert.deepEqual(
        (running.stages as { devices: number; pending: number }[]).map((
          s,
        ) => [s.devices, s.pending]),
        [[1, 0], [1, 1]],
      );
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
