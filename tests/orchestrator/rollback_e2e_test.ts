import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ADMIN_TOKEN,
  api,
  corruptingFetch,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "./_service.ts";

const POLICY = { name: "halves", stages: [{ percent: 50 }, { percent: 100 }] };
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Runs `ctl` in text mode against the service. */
async function ctl(api: string, args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "ctl", "--api", api, "--token", ADMIN_TOKEN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test({
  name:
    "a rollback rollout over MQTT restores every real agent's previous version, and onAbort: rollback undoes a halted rollout",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    let devices: TestDevice[] = [];
    try {
      let corrupt = "";
      // Device 3 corrupts one artifact (the third): its 0xFF halts that rollout in stage 2.
      devices = await startDevices(service, root, 6, {
        fetchFor: (i) => i === 3 ? corruptingFetch(() => corrupt) : undefined,
      });
      const ids = devices.map((d) => d.id);
      const one = crypto.getRandomValues(new Uint8Array(16 * 1024));
      const two = crypto.getRandomValues(new Uint8Array(16 * 1024));
      const [digestOne, digestTwo] = [await upload(service, one), await upload(service, two)];

      const update = async (digest: string, policy: unknown = POLICY) => {
        const created = await api(service, "POST", "/v1/rollouts", {
          artifact: { digest },
          policy,
          targets: { ids },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        return created.body.id as string;
      };

      await t.step("a rollback with nothing recorded to go back to is refused", async () => {
        await waitForRollout(service, await update(digestOne), (r) => r.state === "completed");
        const refused = await api(service, "POST", "/v1/rollouts", {
          action: "rollback",
          policy: POLICY,
          targets: { ids },
        });
        assert.equal(refused.status, 422, JSON.stringify(refused.body));
        const error = refused.body.error as { code: string; message: string };
        assert.equal(error.code, "nothing_to_roll_back");
        assert.match(error.message, /None of the 6 targeted device\(s\) has a previous version/);
      });

      await t.step("a rollback that names an artifact is a 400", async () => {
        const refused = await api(service, "POST", "/v1/rollouts", {
          action: "rollback",
          artifact: { digest: digestTwo },
          policy: POLICY,
          targets: { ids },
        });
        assert.equal(refused.status, 400, JSON.stringify(refused.body));
        assert.match(
          (refused.body.error as { message: string }).message,
          /^Invalid json: A rollback takes no artifact: each device goes back to its own previous version$/,
        );
      });

      let rollbackId = "";
      await t.step(
        "after a second update, ctl rollout create --rollback brings every device back",
        async () => {
          await waitForRollout(service, await update(digestTwo), (r) => r.state === "completed");
          // A registered device that never ran anything: no previous version, so it is skipped.
          const bare = crypto.randomUUID();
          const registered = await api(service, "POST", "/v1/devices", {
            id: bare,
            publicKey: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
          });
          assert.equal(registered.status, 201, JSON.stringify(registered.body));
          const policyFile = join(root, "halves.yaml");
          await Deno.writeTextFile(
            policyFile,
            "name: halves\nstages: [{percent: 50}, {percent: 100}]\n",
          );
          const created = await ctl(service.apiUrl, [
            "--json",
            "rollout",
            "create",
            "--rollback",
            "--policy-file",
            policyFile,
            "--ids",
            [...ids, bare].join(","),
            "--name",
            "back to one",
          ]);
          assert.equal(created.code, 0, created.stderr);
          const rollout = JSON.parse(created.stdout);
          assert.equal(rollout.action, "rollback");
          assert.equal(rollout.artifact, null);
          assert.equal(rollout.rollbackOf, null);
          rollbackId = rollout.id as string;
          const done = await waitForRollout(service, rollbackId, (r) => r.state === "completed");
          assert.equal((done.counts as Record<string, number>).activated, 6);
          assert.equal((done.counts as Record<string, number>).skipped, 1);
          const events = await api(service, "GET", `/v1/rollouts/${rollbackId}/events?limit=1000`);
          const createdEvent =
            (events.body.items as { type: string; data: Record<string, unknown> }[])
              .find((e) => e.type === "rollout.created")!;
          assert.deepEqual(createdEvent.data, {
            ...createdEvent.data,
            action: "rollback",
            skipped: 1,
            skippedReason: "no_previous_version",
          });
          for (const device of devices) {
            assert.deepEqual(await Deno.readFile(join(device.dir, "current")), one);
            assert.deepEqual(await Deno.readFile(join(device.dir, "previous")), two);
            assert.deepEqual(device.running.agent.status().current, digestOne);
            const detail = await api(service, "GET", `/v1/devices/${device.id}`);
            assert.equal(detail.body.currentDigest, digestOne);
            assert.equal(detail.body.previousDigest, digestTwo);
            const history = detail.body.history as {
              rolloutAction: string;
              artifactDigest: string;
            }[];
            assert.deepEqual(history[0], {
              ...history[0],
              rolloutAction: "rollback",
              artifactDigest: digestOne,
            });
          }
          const listed = await api(service, "GET", `/v1/rollouts/${rollbackId}/devices`);
          const items = listed.body.items as { deviceId: string; digest: string; state: string }[];
          assert.deepEqual(items.find((d) => d.deviceId === bare), {
            ...items.find((d) => d.deviceId === bare),
            state: "skipped",
            digest: null,
          });
          const others = items.filter((d) => d.deviceId !== bare);
          assert.equal(others.length, 6);
          assert.ok(others.every((d) => d.digest === digestOne && d.state === "activated"));
          const shown = await ctl(service.apiUrl, ["rollout", "get", rollbackId]);
          assert.equal(shown.code, 0, shown.stderr);
          assert.match(shown.stdout, /"back to one": completed/);
          assert.match(shown.stdout, /rollback each device back to its previous version/);
        },
      );

      await t.step(
        "onAbort: rollback sends the devices a halted rollout activated back",
        async () => {
          const three = crypto.getRandomValues(new Uint8Array(16 * 1024));
          const digestThree = await upload(service, three);
          corrupt = digestThree;
          const id = await update(digestThree, { ...POLICY, concurrency: 1, onAbort: "rollback" });
          const halted = await waitForRollout(
            service,
            id,
            (r) => r.state === "halted" && (r.rolledBackBy as string[]).length === 1,
          );
          assert.equal((halted.haltReason as { device: string }).device, devices[3]!.id);
          assert.equal((halted.counts as Record<string, number>).activated, 3);
          const linked = (halted.rolledBackBy as string[])[0]!;
          const rollback = await waitForRollout(service, linked, (r) => r.state === "completed");
          assert.equal(rollback.action, "rollback");
          assert.equal(rollback.rollbackOf, id);
          assert.equal(rollback.devices, 3);
          assert.equal(rollback.createdBy, "onAbort");
          assert.equal((rollback.counts as Record<string, number>).activated, 3);
          // Stage 1's three had activated three: they run one again; the rest never left it.
          for (const device of devices) {
            assert.deepEqual(await Deno.readFile(join(device.dir, "current")), one);
            const detail = await api(service, "GET", `/v1/devices/${device.id}`);
            assert.equal(detail.body.currentDigest, digestOne);
          }
          for (const device of devices.slice(0, 3)) {
            assert.deepEqual(await Deno.readFile(join(device.dir, "previous")), three);
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
