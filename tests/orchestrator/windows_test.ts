import assert from "node:assert/strict";
import { join } from "node:path";
import { ADMIN_TOKEN, startTestService } from "./_service.ts";
import type { Service } from "../../app/service.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

async function call(service: Service, method: string, path: string, json?: unknown) {
  const response = await service.app.request(path, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(json === undefined ? {} : { "content-type": "application/json" }),
    },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  return { status: response.status, body: await response.json() };
}

/** A policy whose windows open twelve hours from now (so they are closed now) for an hour. */
function laterPolicy(groups: string[]) {
  const hour = (new Date().getUTCHours() + 12) % 24;
  const window = [{ start: `0 ${hour} * * *`, duration: "1h", timeZone: "UTC" }];
  return {
    name: "later",
    stages: [{ percent: 100 }],
    windows: { by: "site", groups: Object.fromEntries(groups.map((g) => [g, window])) },
  };
}

Deno.test({
  name:
    "rollouts with windows by site: refused for a site without one, shown waiting, rebuilt after a restart",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const data = join(root, "data");
    let service = await startTestService(data);
    try {
      const sites = ["berlin", "tokyo", "berlin"];
      const ids: string[] = [];
      for (const site of sites) {
        const id = crypto.randomUUID();
        const registered = await call(service, "POST", "/v1/devices", {
          id,
          publicKey: KEY,
          tags: { site },
        });
        assert.equal(registered.status, 201);
        ids.push(id);
      }
      const artifact = { url: "https://files.example/fw.bin", digest: "d".repeat(64) };
      await t.step(
        "a device whose site has no window: 422 no_window, naming the site",
        async () => {
          const refused = await call(service, "POST", "/v1/rollouts", {
            artifact,
            policy: laterPolicy(["berlin"]),
            targets: { ids },
          });
          assert.equal(refused.status, 422);
          assert.equal(refused.body.error.code, "no_window");
          assert.match(refused.body.error.message, /1 with site "tokyo"/);
          assert.deepEqual(refused.body.error.details, [{ site: "tokyo", devices: 1 }]);
        },
      );
      await t.step(
        "the preview counts devices per window group and names those with none",
        async () => {
          const preview = await call(service, "POST", "/v1/rollouts/preview", {
            policy: laterPolicy(["berlin"]),
            targets: { ids },
          });
          assert.equal(preview.status, 200, JSON.stringify(preview.body));
          assert.deepEqual(preview.body.windows, {
            by: "site",
            groups: [{ group: "berlin", devices: 2 }],
            unmatched: [{ value: "tokyo", devices: 1 }],
          });
        },
      );
      let id = "";
      await t.step(
        "created: nothing starts, the next opening and the waiting devices are shown",
        async () => {
          const created = await call(service, "POST", "/v1/rollouts", {
            artifact,
            policy: laterPolicy(["berlin", "tokyo"]),
            targets: { ids },
          });
          assert.equal(created.status, 201, JSON.stringify(created.body));
          id = created.body.id;
          const windows = created.body.windows;
          assert.equal(windows.by, "site");
          assert.equal(windows.onClose, "finish");
          assert.equal(windows.waiting, 3);
          assert.deepEqual(windows.groups.map((g: { group: string }) => g.group), [
            "berlin",
            "tokyo",
          ]);
          const next = Date.parse(windows.groups[0].nextOpen);
          assert.ok(next > Date.now() + 10 * 3_600_000 && next <= Date.now() + 12 * 3_600_000);
          assert.deepEqual(windows.groups.map((g: { waiting: number }) => g.waiting), [2, 1]);
          const devices = await call(service, "GET", `/v1/rollouts/${id}/devices`);
          assert.deepEqual(
            devices.body.items.map((d: { state: string; waitReason: string }) => [
              d.state,
              d.waitReason,
            ]),
            [["pending", "waiting_window"], ["pending", "waiting_window"], [
              "pending",
              "waiting_window",
            ]],
          );
        },
      );
      await t.step(
        "ctl rollout get and rollout devices print the windows and waiting_window",
        async () => {
          const ctl = async (...args: string[]) => {
            const output = await new Deno.Command(Deno.execPath(), {
              args: [
                "run",
                "--allow-all",
                MAIN,
                "ctl",
                "--api",
                service.apiUrl,
                "--token",
                ADMIN_TOKEN,
                ...args,
              ],
              stdout: "piped",
              stderr: "piped",
              env: { NO_COLOR: "1" },
            }).output();
            assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
            return new TextDecoder().decode(output.stdout);
          };
          const shown = await ctl("rollout", "get", id);
          assert.match(shown, /^ {2}windows by site: 3 devices waiting_window, on close finish$/m);
          assert.match(
            shown,
            /^ {4}berlin: next opens \d{4}-\d\d-\d\dT\d\d:00:00\.000Z, 2 waiting$/m,
          );
          assert.match(shown, /^ {4}tokyo: next opens .*, 1 waiting$/m);
          const preview = await ctl(
            "rollout",
            "preview",
            "--policy",
            "night-windows",
            "--tag",
            "site=berlin",
          );
          assert.match(preview, /^windows by site: berlin 2, new-york 0, tokyo 0, \(other\) 0$/m);
          const devices = await ctl("rollout", "devices", id);
          assert.match(devices, /^DEVICE +STATE +WAITING +ATTEMPT/m);
          assert.equal(devices.match(/pending +waiting_window/g)?.length, 3);
        },
      );
      await t.step(
        "after a restart, recovery rebuilds each device's window from its tags",
        async () => {
          await service.close();
          service = await startTestService(data);
          const view = await call(service, "GET", `/v1/rollouts/${id}`);
          assert.equal(view.body.state, "running");
          assert.equal(view.body.windows.waiting, 3);
          assert.deepEqual(view.body.windows.groups.map((g: { waiting: number }) => g.waiting), [
            2,
            1,
          ]);
          assert.equal(view.body.counts.initiated, 0);
        },
      );
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
