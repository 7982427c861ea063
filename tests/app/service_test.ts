import assert from "node:assert/strict";
import { join } from "node:path";
import { readConfig } from "../../orchestrator/config.ts";
import { type Service, startService } from "../../app/service.ts";
import { listApiTokens, openDatabase } from "../../db/mod.ts";
import {
  connectMqtt,
  deviceClientId,
  type MqttConnection,
  startEmbeddedBroker,
} from "../../mqtt/mod.ts";
import { ADMIN_TOKEN, POLICY_DIR } from "../orchestrator/_service.ts";
import {
  freePort,
  PRIVATE_POSTGRES_UNAVAILABLE,
  startPrivatePostgres,
} from "../db/_private_postgres.ts";

/** Settings for a service in `dataDir` on ephemeral ports, overridden by `env`. */
function config(dataDir: string, env: Record<string, string | undefined> = {}) {
  return readConfig({
    FLOTILLA_DATA_DIR: dataDir,
    FLOTILLA_POLICY_DIR: POLICY_DIR,
    FLOTILLA_ADMIN_TOKEN: ADMIN_TOKEN,
    PORT: "0",
    FLOTILLA_MQTT_PORT: "0",
    ...env,
  });
}

async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  ms = 60_000, // PGlite opens in-process (~10 s of a blocked event loop on a loaded machine)
) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await Promise.resolve().then(probe).catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function get(base: string, path: string, token?: string) {
  const response = await fetch(`${base}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: response.status, body: await response.json() };
}

async function call(service: Service, method: string, path: string, token = ADMIN_TOKEN) {
  const response = await service.app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: method === "POST" ? JSON.stringify({ name: "second-admin", role: "admin" }) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

Deno.test({
  name: "serve binds HTTP before a silent MQTT broker answers, says it waits, and then starts",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    // A broker that accepts TCP and never answers CONNECT.
    const brokerPort = await freePort();
    const silent = Deno.listen({ hostname: "127.0.0.1", port: brokerPort });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of silent) held.push(conn);
    })().catch(() => {});
    const httpPort = await freePort();
    const base = `http://127.0.0.1:${httpPort}`;
    const lines: string[] = [];
    const started = startService(
      config(join(root, "data"), {
        MQTT_URL: `mqtt://127.0.0.1:${brokerPort}`,
        PORT: String(httpPort),
      }),
      { log: (line) => lines.push(line) },
    );
    let service: Service | undefined;
    let broker;
    try {
      assert.deepEqual((await until("/healthz", () => get(base, "/healthz"))).body, {
        status: "ok",
      });
      await until(
        "the waiting line",
        () =>
          lines.includes(`waiting for MQTT broker at mqtt://127.0.0.1:${brokerPort} (retrying)`)
            ? true
            : undefined,
      );
      const ready = await get(base, "/readyz");
      assert.equal(ready.status, 503);
      assert.equal(ready.body.status, "starting");
      assert.equal(ready.body.checks.database, "ok");
      assert.equal(ready.body.checks.mqtt, `waiting for broker at mqtt://127.0.0.1:${brokerPort}`);
      const api = await get(base, "/v1/server", ADMIN_TOKEN);
      assert.equal(api.status, 503);
      assert.equal(api.body.error.code, "starting");
      assert.match(api.body.error.message, /mqtt: waiting for broker/);

      // The broker comes up on the same port: the service finishes starting by itself.
      silent.close();
      for (const conn of held) conn.close();
      await accepting;
      broker = await startEmbeddedBroker({ port: brokerPort });
      service = await started;
      const readyNow = await get(base, "/readyz");
      assert.equal(readyNow.status, 200);
      assert.deepEqual(readyNow.body, { status: "ready", checks: { database: "ok", mqtt: "ok" } });
      assert.equal((await get(base, "/v1/server", ADMIN_TOKEN)).status, 200);
    } finally {
      try {
        silent.close();
      } catch {
        // Closed already.
      }
      await service?.close();
      await broker?.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "an unavailable PostgreSQL is waited for at start and shown by /readyz and 503s after",
  ignore: PRIVATE_POSTGRES_UNAVAILABLE !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const pg = await startPrivatePostgres();
    const httpPort = await freePort();
    const base = `http://127.0.0.1:${httpPort}`;
    const lines: string[] = [];
    let service: Service | undefined;
    try {
      await pg.stop();
      const started = startService(
        config(join(root, "data"), { DATABASE_URL: pg.url, PORT: String(httpPort) }),
        { log: (line) => lines.push(line) },
      );
      await t.step(
        "start-up waits for the database, says so, and goes on once it is up",
        async () => {
          await until("the waiting line", () =>
            lines.find((line) =>
              line.startsWith(
                `waiting for database at postgres://postgres@127.0.0.1:${pg.port}/postgres (retrying): `,
              ) && line.includes("ECONNREFUSED")
            ));
          const ready = await until("/readyz", () => get(base, "/readyz"));
          assert.equal(ready.status, 503);
          assert.match(ready.body.checks.database, /^waiting: .*ECONNREFUSED/);
          await pg.start();
          service = await started;
          assert.equal((await get(base, "/readyz")).status, 200);
        },
      );

      await t.step("a database that stops answers 503s at once, and recovers", async () => {
        await pg.stop();
        const ready = await get(base, "/readyz");
        assert.equal(ready.status, 503);
        assert.equal(ready.body.status, "unavailable");
        assert.match(ready.body.checks.database, /ECONNREFUSED/);
        assert.equal(ready.body.checks.mqtt, "ok");
        for (const path of ["/v1/devices", "/v1/rollouts", "/v1/tokens"]) {
          const before = performance.now();
          const reply = await get(base, path, ADMIN_TOKEN);
          const ms = performance.now() - before;
          assert.equal(reply.status, 503, `${path}: ${JSON.stringify(reply.body)}`);
          assert.equal(reply.body.error.code, "database_unavailable");
          assert.ok(ms < 2_000, `${path} answered in ${ms} ms`);
        }
        const metrics = await fetch(`${base}/metrics`);
        assert.equal(metrics.status, 200);
        assert.match(await metrics.text(), /^flotilla_db_commit_failures_total \d+$/m);
        await pg.start();
        await until("ready again", async () => {
          const again = await get(base, "/readyz");
          return again.status === 200 ? again : undefined;
        });
        assert.equal((await get(base, "/v1/devices", ADMIN_TOKEN)).status, 200);
      });
    } finally {
      await service?.close();
      await pg.destroy();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "the first admin token is made only once the service listens, so a failed start makes none",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const dataDir = join(root, "data");
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      await assert.rejects(
        startService(
          config(dataDir, {
            FLOTILLA_ADMIN_TOKEN: undefined,
            FLOTILLA_MQTT_PORT: String(taken.addr.port),
          }),
          { log: () => {} },
        ),
        /embedded MQTT broker cannot start/,
      );
      const database = await openDatabase({ dataDir });
      try {
        assert.deepEqual(await listApiTokens(database.db), [], "no token nobody saw");
      } finally {
        await database.close();
      }
      const service = await startService(config(dataDir, { FLOTILLA_ADMIN_TOKEN: undefined }), {
        log: () => {},
      });
      try {
        assert.match(service.adminToken ?? "", /^flt_/);
        assert.equal((await call(service, "GET", "/v1/tokens", service.adminToken)).status, 200);
      } finally {
        await service.close();
      }
    } finally {
      taken.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a revoked FLOTILLA_ADMIN_TOKEN: the service still starts and says so; the last admin stays",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const dataDir = join(root, "data");
    try {
      let service = await startService(config(dataDir), { log: () => {} });
      let second: string;
      try {
        const created = await call(service, "POST", "/v1/tokens");
        assert.equal(created.status, 201);
        second = created.body.token;
        const tokens = (await call(service, "GET", "/v1/tokens")).body.items as {
          id: string;
          name: string;
        }[];
        const fromEnv = tokens.find((token) => token.name === "admin-env")!;
        assert.equal(
          (await call(service, "DELETE", `/v1/tokens/${fromEnv.id}`, second)).status,
          204,
        );
      } finally {
        await service.close();
      }

      const lines: string[] = [];
      service = await startService(config(dataDir), { log: (line) => lines.push(line) });
      try {
        assert.ok(
          lines.some((line) =>
            /^FLOTILLA_ADMIN_TOKEN: its token "admin-env" was revoked at \S+, so it does not log in/
              .test(line)
          ),
          lines.join("\n"),
        );
        assert.equal((await call(service, "GET", "/v1/tokens")).status, 401);
        const tokens = (await call(service, "GET", "/v1/tokens", second)).body.items as {
          id: string;
          name: string;
          revokedAt: string | null;
        }[];
        const live = tokens.filter((token) => token.revokedAt === null);
        assert.deepEqual(live.map((token) => token.name), ["second-admin"]);
        const refused = await call(service, "DELETE", `/v1/tokens/${live[0]!.id}`, second);
        assert.equal(refused.status, 409);
        assert.equal(refused.body.error.code, "last_admin");
        assert.match(refused.body.error.message, /"second-admin" is the last live admin token/);
        assert.equal((await call(service, "GET", "/v1/tokens", second)).status, 200);
      } finally {
        await service.close();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "embedded broker presence: a device registered unconnected is offline, one connected before registration is online",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const service = await startService(config(join(root, "data")), { log: () => {} });
    const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    async function register(id: string, batch: boolean) {
      const response = await service.app.request(batch ? "/v1/devices/batch" : "/v1/devices", {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(
          batch ? { devices: [{ id, publicKey: KEY }] } : { id, publicKey: KEY },
        ),
      });
      assert.equal(response.status, 201, await response.text());
    }
    const online = async (id: string) =>
      (await get(service.apiUrl, `/v1/devices/${id}`, ADMIN_TOKEN)).body.online;
    const clients: MqttConnection[] = [];
    try {
      const idle = crypto.randomUUID();
      await register(idle, false);
      assert.equal(await online(idle), false);
      for (const batch of [false, true]) {
        const early = crypto.randomUUID();
        clients.push(
          await connectMqtt(service.mqttUrl, { clientId: deviceClientId(early), clean: true }),
        );
        await register(early, batch);
        assert.equal(await online(early), true, batch ? "batch" : "one");
      }
      await clients.pop()!.close();
      await until("the closed connection's device offline", async () => {
        const items = (await get(service.apiUrl, "/v1/devices?online=true", ADMIN_TOKEN)).body
          .items;
        return items.length === 1 ? true : undefined;
      });
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
