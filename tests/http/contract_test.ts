/**
 * The API contract: bad input anywhere is a 400 naming the field, unsupported methods a 405 with
 * `Allow`, and /openapi.json documents every route and every status a route answers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEVICE_STATES, ROW_STATES } from "../../actors/mod.ts";
import { startTestService } from "../orchestrator/_service.ts";
import { assertError, KEY, request } from "./_api.ts";

const NUL = "\u0000";

Deno.test({
  name: "bad input anywhere answers 400 naming the field, never a 500",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    try {
      const device = crypto.randomUUID();
      assert.equal(
        (await request(service, "POST", "/v1/devices", { json: { id: device, publicKey: KEY } }))
          .status,
        201,
      );
      const upload = await request(service, "POST", "/v1/artifacts", {
        body: new Uint8Array([1, 2, 3]),
        headers: { "content-type": "application/octet-stream" },
      });
      const digest = upload.body.digest;
      const rollout = await request(service, "POST", "/v1/rollouts", {
        json: { artifact: { digest }, policy: "canary", targets: { ids: [device] } },
      });
      assert.equal(rollout.status, 201, JSON.stringify(rollout.body));

      await t.step("a publicKey that is not base64 (defect 1)", async () => {
        for (const publicKey of ["!!!!", "====", "AAA", "AAAAA", "\u00f0\u00c9\ud993\udc12"]) {
          assertError(
            await request(service, "POST", "/v1/devices", {
              json: { id: crypto.randomUUID(), publicKey },
            }),
            400,
            "invalid_request",
            /"publicKey"/,
          );
          assertError(
            await request(service, "POST", "/v1/devices/batch", {
              json: { devices: [{ id: crypto.randomUUID(), publicKey }] },
            }),
            400,
            "invalid_request",
            /"devices\.0\.publicKey"/,
          );
        }
      });

      await t.step("a cursor out of range, on every list (defect 2)", async () => {
        const cases: [string, RegExp][] = [
          [`/v1/rollouts/${rollout.body.id}/devices?cursor=99999999999`, /"cursor"/],
          [`/v1/rollouts/${rollout.body.id}/devices?cursor=-1`, /"cursor"/],
          [`/v1/rollouts/${rollout.body.id}/devices?cursor=1.5`, /"cursor"/],
          [`/v1/rollouts/${rollout.body.id}/events?before=99999999999999999999`, /"before"/],
          [`/v1/devices/${device}/events?before=0`, /"before"/],
          ["/v1/events?after=99999999999999999999", /"after"/],
          ["/v1/devices?cursor=99999999999", /"cursor"/],
          ["/v1/rollouts?cursor=99999999999", /"cursor"/],
          [`/v1/devices/${device}/rollouts?cursor=99999999999`, /"cursor"/],
          ["/v1/artifacts?cursor=99999999999", /"cursor"/],
        ];
        for (const [path, field] of cases) {
          assertError(await request(service, "GET", path), 400, "invalid_request", field);
        }
        // The largest page is served too (history asked the database for one row too many).
        for (
          const path of [
            `/v1/devices/${device}/rollouts?limit=1000`,
            `/v1/devices/${device}/events?limit=1000`,
            `/v1/rollouts/${rollout.body.id}/devices?limit=1000`,
          ]
        ) assert.equal((await request(service, "GET", path)).status, 200, path);
        const page = await request(
          service,
          "GET",
          `/v1/rollouts/${rollout.body.id}/devices?cursor=0`,
        );
        assert.equal(page.status, 200);
        assert.equal(
          (await request(service, "GET", `/v1/artifacts?cursor=${"0".repeat(64)}`)).status,
          200,
        );
      });

      await t.step("a NUL in a tag, filter, cursor or description (defect 3)", async () => {
        const post = (path: string, json: unknown) => request(service, "POST", path, { json });
        const cases: [Promise<Parameters<typeof assertError>[0]>, RegExp][] = [
          [
            post("/v1/devices", { id: crypto.randomUUID(), publicKey: KEY, tags: { k: NUL } }),
            /"tags\.k"/,
          ],
          [
            post("/v1/devices", { id: crypto.randomUUID(), publicKey: KEY, tags: { k: "a\tb" } }),
            /"tags\.k"/,
          ],
          [
            post("/v1/devices/batch", {
              devices: [{ id: crypto.randomUUID(), publicKey: KEY, tags: { k: `a${NUL}` } }],
            }),
            /"devices\.0\.tags\.k"/,
          ],
          [request(service, "GET", "/v1/devices?tag=k:%00"), /"tag"/],
          [request(service, "GET", "/v1/devices?tag=k%3D%00"), /"tag"/],
          [request(service, "GET", "/v1/devices?state=%00"), /"state"/],
          [request(service, "GET", `/v1/rollouts/${rollout.body.id}/devices?state=%00`), /"state"/],
          [request(service, "GET", "/v1/artifacts?cursor=%00"), /"cursor"/],
          [
            post("/v1/rollouts", {
              artifact: { digest },
              policy: "fast",
              targets: { tags: { k: NUL } },
            }),
            /"targets\.tags\.k"/,
          ],
          [
            post("/v1/rollouts", {
              artifact: { digest },
              policy: "fast",
              targets: { tags: { [`k${NUL}`]: "v" } },
            }),
            /"targets\.tags/,
          ],
          [
            post("/v1/rollouts/preview", { policy: "fast", targets: { tags: { k: NUL } } }),
            /"targets\.tags\.k"/,
          ],
        ];
        for (const [reply, field] of cases) {
          assertError(await reply, 400, "invalid_request", field);
        }
        // The inline policy is read by the policy loader, which names the field its own way.
        const inline = await post("/v1/rollouts", {
          artifact: { digest },
          policy: { name: "nul", description: `a${NUL}b`, stages: [{ percent: 100 }] },
          targets: { ids: [crypto.randomUUID()] },
        });
        assertError(inline, 400, "invalid_policy", /description/);
        assert.deepEqual(
          inline.body.error.details.map((issue: { path: string }) => issue.path),
          ["description"],
        );
      });

      await t.step("a query parameter the document does not list, even with no name", async () => {
        for (
          const path of [
            "/v1/artifacts?limit=1&x=1",
            `/v1/devices/${device}/rollouts?=null`,
            "/v1/devices?state=pending&=x",
            "/v1/rollouts?=",
          ]
        ) assertError(await request(service, "GET", path), 400, "invalid_request", /query/);
      });

      await t.step("an unknown state filter lists the states (defect 17)", async () => {
        const bogus = await request(service, "GET", "/v1/devices?state=bogus");
        assertError(bogus, 400, "invalid_request", /"state"/);
        for (const state of ROW_STATES) assert.match(bogus.body.error.message, new RegExp(state));
        assertError(
          await request(service, "GET", `/v1/rollouts/${rollout.body.id}/devices?state=bogus`),
          400,
          "invalid_request",
          /"state".*pending/,
        );
        // The rollout sends its INITIATE at once and no agent answers it (the response timeout is
        // 10 minutes): once the device shows `initiated` it stays there for this step, so the
        // filters are compared against a state that cannot move under them.
        const deadline = Date.now() + 30_000;
        const stateOf = async () =>
          (await request(service, "GET", `/v1/devices/${device}`)).body.history[0]?.state;
        while (await stateOf() !== "initiated") {
          assert.ok(Date.now() < deadline, `device state stayed ${await stateOf()}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const ids = async (state: string) => {
          const reply = await request(service, "GET", `/v1/devices?state=${state}`);
          assert.equal(reply.status, 200);
          return reply.body.items.map((d: { id: string }) => d.id);
        };
        assert.deepEqual(await ids("initiated"), [device]);
        assert.deepEqual(await ids("pending"), []);
      });
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

/** A request over a bare socket: `fetch` refuses to send TRACE. The status line and headers. */
async function rawRequest(apiUrl: string, method: string, path: string): Promise<string> {
  const url = new URL(apiUrl);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  try {
    await conn.write(
      new TextEncoder().encode(
        `${method} ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) text += chunk;
    return text.split("\r\n\r\n")[0]!;
  } catch (error) {
    conn.close();
    throw error;
  }
}

Deno.test({
  name: "unsupported methods answer 405 with Allow, and OPTIONS lists the methods",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    try {
      const id = crypto.randomUUID();
      const cases: [string, string, string][] = [
        ["GET", "/v1/devices/batch", "POST, OPTIONS"],
        ["DELETE", "/v1/devices/batch", "POST, OPTIONS"],
        ["PUT", "/v1/devices", "GET, HEAD, POST, OPTIONS"],
        ["PUT", `/v1/devices/${id}`, "GET, HEAD, PATCH, DELETE, OPTIONS"],
        ["GET", "/v1/rollouts/preview", "POST, OPTIONS"],
        ["GET", "/v1/policies/reload", "POST, OPTIONS"],
        ["POST", "/healthz", "GET, HEAD, OPTIONS"],
        ["DELETE", "/openapi.json", "GET, HEAD, OPTIONS"],
        ["PUT", `/artifacts/${"a".repeat(64)}`, "GET, HEAD, OPTIONS"],
      ];
      for (const [method, path, allow] of cases) {
        const reply = await request(service, method, path);
        assertError(reply, 405, "method_not_allowed", new RegExp(`${method} ${path}`));
        assert.equal(reply.headers.get("allow"), allow, `${method} ${path}`);
      }
      const options = await request(service, "OPTIONS", `/v1/rollouts/${id}/pause`, {
        token: null,
      });
      assert.equal(options.status, 204);
      assert.equal(options.headers.get("allow"), "POST, OPTIONS");
      // TRACE, over a socket since fetch will not send it; without a token, as the method is
      // refused before authentication.
      const trace = await rawRequest(service.apiUrl, "TRACE", "/v1/devices/batch");
      assert.match(trace, /^HTTP\/1\.1 405 /);
      assert.match(trace, /\r\nallow: POST, OPTIONS\r\n/i);
      assert.match(await rawRequest(service.apiUrl, "TRACE", "/v1/events"), /^HTTP\/1\.1 405 /);
      assert.match(await rawRequest(service.apiUrl, "TRACE", "/nothing"), /^HTTP\/1\.1 404 /);
      assert.equal((await request(service, "HEAD", "/v1/me")).status, 200);
      assertError(await request(service, "PUT", "/v1/nothing"), 404, "not_found");
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "/openapi.json documents every route, with an operationId, tags and its error statuses",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    try {
      const spec = (await request(service, "GET", "/openapi.json", { token: null })).body;
      assert.ok(spec.info.contact, "info.contact");
      assert.ok(spec.servers?.length, "servers");
      const documented = new Set<string>();
      const operationIds = new Set<string>();
      for (const [path, item] of Object.entries(spec.paths)) {
        for (const [method, operation] of Object.entries(item as Record<string, unknown>)) {
          // deno-lint-ignore no-explicit-any -- checked field by field
          const op = operation as any;
          const name = `${method.toUpperCase()} ${path}`;
          documented.add(name);
          assert.ok(op.operationId, `${name} has an operationId`);
          assert.ok(!operationIds.has(op.operationId), `${name}: operationId is unique`);
          operationIds.add(op.operationId);
          assert.ok(op.tags?.length, `${name} has tags`);
          assert.ok(op.description, `${name} has a description`);
          for (const [status, response] of Object.entries(op.responses)) {
            // deno-lint-ignore no-explicit-any -- checked field by field
            const content = (response as any).content;
            if (Number(status) >= 400 && name !== "GET /readyz") {
              assert.equal(
                content?.["application/json"]?.schema?.$ref,
                "#/components/schemas/Error",
                `${name} ${status} uses the Error schema`,
              );
            }
          }
          const statuses = Object.keys(op.responses);
          if (path.startsWith("/v1/")) {
            for (const status of ["400", "401", "403", "503"]) {
              assert.ok(statuses.includes(status), `${name} documents ${status}`);
            }
          }
          if (op.requestBody?.content?.["application/json"]) {
            assert.ok(statuses.includes("413"), `${name} documents 413`);
            assert.ok(statuses.includes("408"), `${name} documents 408`);
          }
        }
      }
      // Every route the server answers is in the document, but the console's pages and assets.
      const served = service.app.routes
        .filter((route) => route.method !== "ALL")
        .filter((route) => !/^\/(ui\/|docs$|$)/.test(route.path))
        .map((route) =>
          `${route.method} ${route.path.replace(/:(\w+)/g, "{$1}")}`.replace(/\/$/, "")
        );
      for (const route of new Set(served)) {
        if (route.startsWith("HEAD ")) continue;
        assert.ok(documented.has(route), `${route} is documented`);
      }
      for (
        const route of ["GET /healthz", "GET /readyz", "GET /metrics", "GET /artifacts/{digest}"]
      ) {
        assert.ok(documented.has(route), `${route} is documented`);
      }
      const ops = spec.paths;
      assert.ok(ops["/v1/events"].get.responses["200"].content["text/event-stream"]);
      assert.ok(ops["/metrics"].get.responses["200"].content["text/plain"]);
      for (const status of ["409", "413", "422", "503", "507"]) {
        assert.ok(ops["/v1/rollouts"].post.responses[status], `POST /v1/rollouts ${status}`);
      }
      assert.ok(ops["/v1/artifacts"].post.responses["507"], "POST /v1/artifacts 507");
      assert.deepEqual(
        ops["/readyz"].get.responses["503"].content["application/json"].schema.$ref,
        "#/components/schemas/Readiness",
      );
      // A bound the server checks is a bound the document states.
      assert.equal(
        spec.components.schemas.RegisterArtifact.properties.size.maximum,
        Number.MAX_SAFE_INTEGER,
      );
      assert.ok(spec.components.schemas.RegisterArtifact.properties.url.pattern, "url's scheme");
      const counts = spec.components.schemas.Rollout.properties.counts;
      assert.deepEqual([...counts.required].sort(), [...DEVICE_STATES].sort());
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "a rollout's counts list every device state, also after a restart",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const data = join(root, "data");
    let service = await startTestService(data);
    try {
      const device = crypto.randomUUID();
      await request(service, "POST", "/v1/devices", { json: { id: device, publicKey: KEY } });
      const upload = await request(service, "POST", "/v1/artifacts", {
        body: new Uint8Array([4, 5, 6]),
        headers: { "content-type": "application/octet-stream" },
      });
      const created = await request(service, "POST", "/v1/rollouts", {
        json: { artifact: { digest: upload.body.digest }, policy: "fast", targets: { all: true } },
      });
      assert.deepEqual(Object.keys(created.body.counts).sort(), [...DEVICE_STATES].sort());
      await request(service, "POST", `/v1/rollouts/${created.body.id}/cancel`);
      await service.close();
      service = await startTestService(data);
      const after = await request(service, "GET", `/v1/rollouts/${created.body.id}`);
      assert.equal(after.body.state, "cancelled");
      assert.deepEqual(Object.keys(after.body.counts).sort(), [...DEVICE_STATES].sort());
      const total = Object.values(after.body.counts as Record<string, number>)
        .reduce((sum, n) => sum + n, 0);
      assert.equal(total, 1);
      assert.equal(after.body.counts.activated, 0);
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
