import assert from "node:assert/strict";
import { join } from "node:path";
import { ADMIN_TOKEN, startTestService } from "../orchestrator/_service.ts";
import { assertError, KEY, request } from "./_api.ts";

Deno.test({
  name: "the HTTP API answers auth failures and bad input with specific 4xx errors",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"), {
      env: { FLOTILLA_MAX_ARTIFACT_BYTES: "4096", FLOTILLA_MAX_JSON_BYTES: "65536" },
    });
    try {
      await t.step("health, readiness, metrics, OpenAPI and docs need no token", async () => {
        assert.deepEqual((await request(service, "GET", "/healthz", { token: null })).body, {
          status: "ok",
        });
        assert.equal((await request(service, "GET", "/readyz", { token: null })).status, 200);
        const metrics = await request(service, "GET", "/metrics", { token: null });
        assert.match(metrics.body, /# TYPE flotilla_frames_rejected_total counter/);
        assert.match(metrics.body, /flotilla_mqtt_publish_seconds_bucket\{le="\+Inf"\}/);
        assert.match(metrics.body, /^flotilla_process_memory_bytes\{kind="rss"\} [1-9]\d+$/m);
        assert.match(
          metrics.body,
          /^flotilla_process_memory_bytes\{kind="heap_limit"\} [1-9]\d+$/m,
        );
        const spec = await request(service, "GET", "/openapi.json", { token: null });
        for (
          const path of [
            "/v1/devices",
            "/v1/rollouts",
            "/v1/rollouts/{id}/pause",
            "/v1/artifacts",
            "/v1/events",
          ]
        ) {
          assert.ok(spec.body.paths[path], `OpenAPI lacks ${path}`);
        }
        assert.match(
          (await request(service, "GET", "/docs", { token: null })).body,
          /flotilla API/,
        );
      });

      await t.step("every /v1 route needs a valid bearer token", async () => {
        assertError(
          await request(service, "GET", "/v1/devices", { token: null }),
          401,
          "unauthorized",
          /Missing bearer token/,
        );
        const malformed = await request(service, "GET", "/v1/devices", {
          token: null,
          headers: { authorization: "Basic abc" },
        });
        assertError(malformed, 401, "unauthorized", /Malformed Authorization header/);
        assertError(
          await request(service, "GET", "/v1/server", { token: "nope-nope-nope-nope" }),
          401,
          "unauthorized",
          /Invalid or revoked token/,
        );
        const server = await request(service, "GET", "/v1/server");
        assert.equal(server.status, 200);
        assert.deepEqual(Object.keys(server.body).sort(), [
          "currentKey",
          "keys",
          "mqtt",
          "nextKey",
          "protocolVersion",
          "publicKey",
          "releaseKeySetVersion",
          "releaseKeys",
          "rootReleaseKeys",
          "rotation",
          "serverId",
        ]);
        assert.equal(server.body.serverId, service.serverId);
      });

      await t.step("roles: viewers read, operators write, admins manage tokens", async () => {
        const viewer = await request(service, "POST", "/v1/tokens", {
          json: { name: "ci-viewer", role: "viewer" },
        });
        assert.equal(viewer.status, 201);
        assert.match(viewer.body.token, /^flt_/);
        const operator = await request(service, "POST", "/v1/tokens", {
          json: { name: "ci-operator", role: "operator" },
        });
        assert.equal(
          (await request(service, "GET", "/v1/devices", { token: viewer.body.token })).status,
          200,
        );
        assertError(
          await request(service, "POST", "/v1/devices", {
            token: viewer.body.token,
            json: { id: crypto.randomUUID(), publicKey: KEY },
          }),
          403,
          "forbidden",
          /role "viewer": this needs "operator"/,
        );
        assertError(
          await request(service, "GET", "/v1/tokens", { token: operator.body.token }),
          403,
          "forbidden",
        );
        const listed = await request(service, "GET", "/v1/tokens");
        assert.ok(
          listed.body.items.every((item: Record<string, unknown>) =>
            !("token" in item) && !("hash" in item)
          ),
        );
        assertError(
          await request(service, "POST", "/v1/tokens", {
            json: { name: "ci-viewer", role: "viewer" },
          }),
          409,
          "token_exists",
        );
        assert.equal(
          (await request(service, "DELETE", `/v1/tokens/${viewer.body.id}`)).status,
          204,
        );
        assertError(
          await request(service, "GET", "/v1/devices", { token: viewer.body.token }),
          401,
          "unauthorized",
        );
      });

      await t.step("device registration validates every field and refuses duplicates", async () => {
        const bad = await request(service, "POST", "/v1/devices", {
          body: "{not json",
          headers: { "content-type": "application/json" },
        });
        assert.equal(bad.status, 400);
        assert.equal(bad.body.error.code, "bad_request");
        assert.match(bad.body.error.message, /Malformed JSON/);
        assertError(
          await request(service, "POST", "/v1/devices", { json: { id: "nope", publicKey: KEY } }),
          400,
          "invalid_request",
          /"id"/,
        );
        assertError(
          await request(service, "POST", "/v1/devices", {
            json: { id: crypto.randomUUID(), publicKey: "AAAA" },
          }),
          400,
          "invalid_request",
          /32-byte/,
        );
        assertError(
          await request(service, "POST", "/v1/devices", {
            json: { id: crypto.randomUUID(), publicKey: KEY, color: "red" },
          }),
          400,
          "invalid_request",
        );
        const id = crypto.randomUUID();
        const created = await request(service, "POST", "/v1/devices", {
          json: { id, publicKey: KEY, tags: { site: "lab" } },
        });
        assert.equal(created.status, 201);
        assert.deepEqual(created.body.tags, { site: "lab" });
        assertError(
          await request(service, "POST", "/v1/devices", { json: { id, publicKey: KEY } }),
          409,
          "device_exists",
        );
        assertError(await request(service, "GET", "/v1/devices?limit=0"), 400, "invalid_request");
        assertError(
          await request(service, "GET", "/v1/devices?cursor=xyz"),
          400,
          "invalid_request",
        );
        assertError(
          await request(service, "GET", "/v1/devices?tag=nocolon"),
          400,
          "invalid_request",
          /key:value/,
        );
        const byTag = await request(service, "GET", "/v1/devices?tag=site:lab");
        assert.deepEqual(byTag.body.items.map((d: { id: string }) => d.id), [id]);
        const byEquals = await request(service, "GET", "/v1/devices?tag=site%3Dlab");
        assert.deepEqual(byEquals.body.items.map((d: { id: string }) => d.id), [id]);
        const byOther = await request(service, "GET", "/v1/devices?tag=site=elsewhere");
        assert.deepEqual(byOther.body.items, []);
        assertError(
          await request(service, "GET", "/v1/devices/not-a-uuid"),
          400,
          "invalid_request",
        );
        assertError(
          await request(service, "GET", `/v1/devices/${crypto.randomUUID()}`),
          404,
          "not_found",
        );
        assertError(
          await request(service, "DELETE", `/v1/devices/${crypto.randomUUID()}`),
          404,
          "not_found",
        );
        const oversized = await request(service, "POST", "/v1/devices", {
          json: { id, publicKey: KEY, pad: "x".repeat(70_000) },
        });
        assertError(oversized, 413, "payload_too_large");
      });

      await t.step("batch registration is all or nothing, and can skip existing ids", async () => {
        const devices = Array.from(
          { length: 3 },
          () => ({ id: crypto.randomUUID(), publicKey: KEY }),
        );
        const created = await request(service, "POST", "/v1/devices/batch", { json: { devices } });
        assert.equal(created.status, 201);
        assert.deepEqual(created.body, { created: 3, skipped: 0 });
        const extra = { id: crypto.randomUUID(), publicKey: KEY };
        assertError(
          await request(service, "POST", "/v1/devices/batch", {
            json: { devices: [extra, devices[0]] },
          }),
          409,
          "device_exists",
        );
        assertError(await request(service, "GET", `/v1/devices/${extra.id}`), 404, "not_found");
        const skipped = await request(service, "POST", "/v1/devices/batch", {
          json: { devices: [extra, devices[0]], ifExists: "skip" },
        });
        assert.deepEqual(skipped.body, { created: 1, skipped: 1 });
        assertError(
          await request(service, "POST", "/v1/devices/batch", {
            json: { devices: [extra, extra] },
          }),
          422,
          "duplicate_device",
          /listed twice/,
        );
        assertError(
          await request(service, "POST", "/v1/devices/batch", { json: { devices: [] } }),
          400,
          "invalid_request",
        );
      });

      let digest = "";
      await t.step("artifacts upload with a cap and download with ETag and Range", async () => {
        const bytes = crypto.getRandomValues(new Uint8Array(3000));
        const uploaded = await request(service, "POST", "/v1/artifacts", {
          body: bytes,
          headers: { "content-type": "application/octet-stream" },
        });
        assert.equal(uploaded.status, 201);
        digest = uploaded.body.digest;
        const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
        assert.equal(digest, expected);
        assert.equal(uploaded.body.size, 3000);
        assert.equal(uploaded.body.url, `${service.apiUrl}/artifacts/${digest}`);
        assertError(
          await request(service, "POST", "/v1/artifacts", {
            body: new Uint8Array(5000),
            headers: { "content-type": "application/octet-stream" },
          }),
          413,
          "payload_too_large",
        );
        const whole = await service.app.request(`/artifacts/${digest}`);
        assert.equal(whole.status, 200);
        assert.equal(whole.headers.get("etag"), `"${digest}"`);
        assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
        const part = await service.app.request(`/artifacts/${digest}`, {
          headers: { range: "bytes=100-199" },
        });
        assert.equal(part.status, 206);
        assert.equal(part.headers.get("content-range"), "bytes 100-199/3000");
        assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(100, 200));
        const tail = await service.app.request(`/artifacts/${digest}`, {
          headers: { range: "bytes=-10" },
        });
        assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.subarray(2990));
        const cached = await service.app.request(`/artifacts/${digest}`, {
          headers: { "if-none-match": `"${digest}"` },
        });
        assert.equal(cached.status, 304);
        await cached.body?.cancel();
        const outside = await service.app.request(`/artifacts/${digest}`, {
          headers: { range: "bytes=5000-" },
        });
        assert.equal(outside.status, 416);
        assert.equal(outside.headers.get("content-range"), "bytes */3000");
        await outside.body?.cancel();
        const missing = await service.app.request(`/artifacts/${"0".repeat(64)}`);
        assert.equal(missing.status, 404);
        await missing.body?.cancel();
        const external = await request(service, "POST", "/v1/artifacts", {
          json: { url: "https://files.example/fw.bin", digest: "A".repeat(64) },
        });
        assert.equal(external.status, 201);
        assert.deepEqual([external.body.digest, external.body.url], [
          "a".repeat(64),
          "https://files.example/fw.bin",
        ]);
        assertError(
          await request(service, "POST", "/v1/artifacts", {
            json: { url: "ftp://x/y", digest: "a".repeat(64) },
          }),
          400,
          "invalid_request",
        );
      });

      await t.step(
        "rollout creation rejects unknown policies, artifacts and devices, writing nothing",
        async () => {
          const device = crypto.randomUUID();
          await request(service, "POST", "/v1/devices", { json: { id: device, publicKey: KEY } });
          const good = { artifact: { digest }, policy: "fast", targets: { ids: [device] } };
          assertError(
            await request(service, "POST", "/v1/rollouts", { json: { ...good, policy: "nope" } }),
            422,
            "unknown_policy",
          );
          const inline = await request(service, "POST", "/v1/rollouts", {
            json: { ...good, policy: { name: "x", stages: [{ percent: 200 }] } },
          });
          assertError(inline, 400, "invalid_policy");
          assert.ok(
            inline.body.error.details.some((issue: { path: string }) =>
              issue.path.startsWith("stages[0]")
            ),
          );
          assertError(
            await request(service, "POST", "/v1/rollouts", {
              json: { ...good, artifact: { digest: "b".repeat(64) } },
            }),
            422,
            "unknown_artifact",
          );
          assertError(
            await request(service, "POST", "/v1/rollouts", {
              json: { ...good, targets: { ids: [device, crypto.randomUUID()] } },
            }),
            422,
            "invalid_targets",
          );
          assertError(
            await request(service, "POST", "/v1/rollouts", {
              json: { ...good, targets: { tags: { none: "such" } } },
            }),
            422,
            "no_devices",
          );
          assertError(
            await request(service, "POST", "/v1/rollouts", { json: { ...good, targets: {} } }),
            400,
            "invalid_request",
          );
          const back = { action: "rollback", policy: "fast", targets: { ids: [device] } };
          assertError(
            await request(service, "POST", "/v1/rollouts", {
              json: { ...back, artifact: { digest } },
            }),
            400,
            "invalid_request",
            /^Invalid json: A rollback takes no artifact/,
          );
          assertError(
            await request(service, "POST", "/v1/rollouts", { json: { ...good, action: "undo" } }),
            400,
            "invalid_request",
          );
          assertError(
            await request(service, "POST", "/v1/rollouts", { json: back }),
            422,
            "nothing_to_roll_back",
            /^None of the 1 targeted device\(s\) has a previous version recorded$/,
          );
          assert.deepEqual((await request(service, "GET", "/v1/rollouts")).body.items, []);
          const created = await request(service, "POST", "/v1/rollouts", { json: good });
          assert.equal(created.body.action, "update");
          assert.equal(created.body.artifact.digest, digest);
          assert.equal(created.body.rollbackOf, null);
          assert.deepEqual(created.body.rolledBackBy, []);
          assert.equal(created.status, 201, JSON.stringify(created.body));
          assert.equal(created.body.state, "running");
          assert.equal(created.body.policy.name, "fast");
          assertError(
            await request(service, "POST", "/v1/rollouts", { json: good }),
            409,
            "devices_busy",
          );
          assertError(
            await request(service, "POST", `/v1/rollouts/${created.body.id}/promote`),
            409,
            "not_waiting_approval",
          );
          assertError(
            await request(service, "POST", `/v1/rollouts/${created.body.id}/resume`),
            409,
            "not_paused",
          );
          assert.equal(
            (await request(service, "POST", `/v1/rollouts/${created.body.id}/pause`)).body.state,
            "paused",
          );
          assert.equal(
            (await request(service, "POST", `/v1/rollouts/${created.body.id}/cancel`)).body.state,
            "cancelled",
          );
          assertError(
            await request(service, "POST", `/v1/rollouts/${created.body.id}/pause`),
            409,
            "not_running",
            /"cancelled"/,
          );
          assertError(
            await request(service, "POST", `/v1/rollouts/${crypto.randomUUID()}/pause`),
            404,
            "not_found",
          );
          assertError(await request(service, "GET", "/v1/rollouts/nope"), 400, "invalid_request");
          const policies = await request(service, "GET", "/v1/policies");
          assert.deepEqual(policies.body.items.map((p: { name: string }) => p.name).sort(), [
            "canary",
            "dynamic",
            "fast",
            "night-windows",
            "scheduled",
            "two-phase",
          ]);
          assert.match(policies.body.items[0].sha256, /^[0-9a-f]{64}$/);
          assertError(await request(service, "GET", "/v1/policies/none"), 404, "not_found");
        },
      );

      await t.step("events stream over SSE from the start with ?after=0", async () => {
        const response = await service.app.request("/v1/events?after=0", {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        assert.equal(response.headers.get("content-type"), "text/event-stream");
        const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
        let text = "";
        while (!text.includes("event: rollout.cancelled")) {
          text += (await reader.read()).value ?? "";
        }
        await reader.cancel();
        assert.match(text, /event: rollout\.created/);
        assert.match(text, /id: \d+/);
        assertError(
          await request(service, "GET", "/v1/events?rollout=nope"),
          400,
          "invalid_request",
        );
      });

      await t.step("unknown routes answer 404 in the error shape", async () => {
        assertError(await request(service, "GET", "/v1/nothing"), 404, "not_found");
      });
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "a rollout too large for the orchestrator's heap is refused with 503, writing nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const MB = 1024 * 1024;
    // 10 MB free: room for about 5,000 devices, not for 10,000.
    const service = await startTestService(join(root, "data"), {
      heap: () => ({ limit: 500 * MB, used: 490 * MB }),
    });
    try {
      const devices = Array.from({ length: 10_000 }, () => ({
        id: crypto.randomUUID(),
        publicKey: KEY,
      }));
      const registered = await request(service, "POST", "/v1/devices/batch", {
        json: { devices },
      });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      const uploaded = await request(service, "POST", "/v1/artifacts", {
        body: new Uint8Array(100),
        headers: { "content-type": "application/octet-stream" },
      });
      const rollout = { artifact: { digest: uploaded.body.digest }, policy: "fast" };
      assertError(
        await request(service, "POST", "/v1/rollouts", {
          json: { ...rollout, targets: { all: true } },
        }),
        503,
        "insufficient_memory",
        /^Cannot create rollout: 10000 devices need about 20 MB of heap and 10 MB of the 500 MB heap limit is free/,
      );
      assert.deepEqual((await request(service, "GET", "/v1/rollouts")).body.items, []);
      const small = await request(service, "POST", "/v1/rollouts", {
        json: { ...rollout, targets: { ids: devices.slice(0, 100).map((d) => d.id) } },
      });
      assert.equal(small.status, 201, JSON.stringify(small.body));
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
