import assert from "node:assert/strict";
import { join } from "node:path";
import { ADMIN_TOKEN, startTestService } from "./_service.ts";
import type { Service } from "../../app/service.ts";

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

Deno.test({
  name: "a refused rollout registers no artifact given by url; a created one registers it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    try {
      const device = crypto.randomUUID();
      assert.equal(
        (await call(service, "POST", "/v1/devices", { id: device, publicKey: KEY })).status,
        201,
      );
      const digest = "c".repeat(64);
      const artifact = { url: "https://files.example/fw.bin", digest };
      await t.step("no devices selected: 422 and no artifact", async () => {
        const refused = await call(service, "POST", "/v1/rollouts", {
          artifact,
          policy: "fast",
          targets: { tags: { none: "such" } },
        });
        assert.equal(refused.status, 422);
        assert.equal(refused.body.error.code, "no_devices");
        assert.equal((await call(service, "GET", `/v1/artifacts/${digest}`)).status, 404);
      });
      await t.step("an unknown target device: 422 and no artifact", async () => {
        const refused = await call(service, "POST", "/v1/rollouts", {
          artifact,
          policy: "fast",
          targets: { ids: [device, crypto.randomUUID()] },
        });
        assert.equal(refused.status, 422);
        assert.equal(refused.body.error.code, "invalid_targets");
        assert.equal((await call(service, "GET", `/v1/artifacts/${digest}`)).status, 404);
      });
      await t.step("created: the artifact is registered with its url", async () => {
        const created = await call(service, "POST", "/v1/rollouts", {
          artifact,
          policy: "fast",
          targets: { ids: [device] },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        assert.equal(created.body.artifact.url, artifact.url);
        const stored = await call(service, "GET", `/v1/artifacts/${digest}`);
        assert.equal(stored.status, 200);
        assert.equal(stored.body.url, artifact.url);
      });
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
