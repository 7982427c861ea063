import assert from "node:assert/strict";
import { join } from "node:path";
import { provisionDevice } from "../../device/mod.ts";
import {
  ADMIN_TOKEN,
  api,
  startDevices,
  startTestService,
  type TestDevice,
  waitForRollout,
} from "./_service.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

// One stage; every contacted device must succeed: a frame version 1 device that was sent a
// KEY_ROTATE would time out (2 s) and fail the rollout.
const POLICY = {
  name: "rotate-all",
  stages: [{ percent: 100 }],
  success: { minPercent: 100 },
  retry: { attempts: 1 },
  timeouts: { response: "2s" },
};

/** Registers a device with frame version 1 (no agent runs: it is never contacted). */
async function registerVersion1(
  service: Awaited<ReturnType<typeof startTestService>>,
  dir: string,
) {
  const identity = await provisionDevice(dir);
  const registered = await api(service, "POST", "/v1/devices", {
    id: identity.id,
    publicKey: identity.publicKey.toBase64(),
    tags: { bench: "v1" },
    frameVersion: 1,
  });
  assert.equal(registered.status, 201, JSON.stringify(registered.body));
  return identity.id;
}

Deno.test({
  name:
    "[SRUP-10] a key rotation skips devices registered with frame version 1 (no KEY_ROTATE): skippedReason frame_version, never contacted, not failed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    let devices: TestDevice[] = [];
    try {
      const old = [
        await registerVersion1(service, join(root, "v1-0")),
        await registerVersion1(service, join(root, "v1-1")),
      ];

      await t.step("only frame version 1 targets: 422 nothing_to_rotate, no key made", async () => {
        const refused = await api(service, "POST", "/v1/server/rotate-key", {
          targets: { ids: old },
          policy: POLICY,
        });
        assert.equal(refused.status, 422, JSON.stringify(refused.body));
        const error = refused.body.error as { code: string; message: string; details: unknown };
        assert.equal(error.code, "nothing_to_rotate");
        assert.match(error.message, /2 registered with frame version 1, which has no KEY_ROTATE/);
        assert.deepEqual(error.details, { trusted: 0, frameVersion1: 2 });
        const server = await api(service, "GET", "/v1/server");
        assert.equal(server.body.nextKey, null);
        assert.equal(server.body.rotation, null);
      });

      devices = await startDevices(service, root, 2);
      await t.step(
        "mixed targets: the version 2 agents rotate, the version 1 devices are skipped and the rollout completes",
        async () => {
          const created = await api(service, "POST", "/v1/server/rotate-key", {
            targets: { all: true },
            policy: POLICY,
          });
          assert.equal(created.status, 201, JSON.stringify(created.body));
          const id = created.body.id as string;
          const done = await waitForRollout(service, id, (r) => r.state === "completed");
          const counts = done.counts as Record<string, number>;
          assert.equal(counts.activated, 2);
          assert.equal(counts.skipped, 2);
          assert.equal(counts.failed, 0);
          assert.deepEqual(done.skippedReasons, { key_trusted: 0, frame_version: 2 });

          const rows = await api(service, "GET", `/v1/rollouts/${id}/devices?limit=100`);
          const states = new Map(
            (rows.body.items as { deviceId: string; state: string; attempt: number }[])
              .map((row) => [row.deviceId, row]),
          );
          for (const device of old) {
            assert.equal(states.get(device)?.state, "skipped");
            assert.equal(states.get(device)?.attempt, 0);
          }

          const events = await api(service, "GET", `/v1/rollouts/${id}/events?limit=1000`);
          const createdEvent =
            (events.body.items as { type: string; data: Record<string, unknown> }[])
              .find((e) => e.type === "rollout.created")!;
          assert.deepEqual(createdEvent.data, {
            ...createdEvent.data,
            action: "rotate-key",
            skipped: 2,
            skippedReason: "frame_version",
            skippedReasons: { frame_version: 2 },
          });

          const server = (await api(service, "GET", "/v1/server")).body as {
            nextKey: { fingerprint: string };
          };
          for (const device of devices) {
            const row = await api(service, "GET", `/v1/devices/${device.id}`);
            assert.equal(row.body.serverKey, server.nextKey.fingerprint);
          }
          for (const device of old) {
            const row = await api(service, "GET", `/v1/devices/${device}`);
            assert.equal(row.body.serverKey, null);
          }

          const shown = await new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "--allow-all",
              MAIN,
              "ctl",
              "--api",
              service.apiUrl,
              "--token",
              ADMIN_TOKEN,
              "rollout",
              "get",
              id,
            ],
            stdout: "piped",
            stderr: "piped",
            env: { NO_COLOR: "1" },
          }).output();
          assert.equal(shown.code, 0, new TextDecoder().decode(shown.stderr));
          assert.match(
            new TextDecoder().decode(shown.stdout),
            /\n {2}skipped {2}key_trusted=0,frame_version=2\n/,
          );
        },
      );
    } finally {
      for (const device of devices) await device.running.close();
      await service.close();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
