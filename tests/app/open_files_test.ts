import assert from "node:assert/strict";
import { join } from "node:path";
import { serveChild } from "../_helpers.ts";
import { ADMIN_TOKEN, POLICY_DIR } from "../orchestrator/_service.ts";

/** Open files the child may have: its idle service takes about 140 (PGlite's among them). */
const NOFILE = 250;
/** More connections than that limit leaves room for, fewer than the listen backlog holds. */
const FLOOD = 300;

async function hasPrlimit(): Promise<boolean> {
  try {
    return (await new Deno.Command("prlimit", { args: ["--version"], stdout: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

async function until(what: string, probe: () => Promise<boolean> | boolean, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A counter's value in /metrics text, for one label set. */
function counter(metrics: string, name: string, labels: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  assert.ok(line, `no ${name}{${labels}} in /metrics`);
  return Number(line.split(" ").pop());
}

/** MQTT 3.1.1 CONNECT, clean session, client id "probe"; true when CONNACK accepts it. */
async function mqttConnects(port: number): Promise<boolean> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const id = new TextEncoder().encode("probe");
    const body = [0, 4, ...new TextEncoder().encode("MQTT"), 4, 2, 0, 60, 0, id.length, ...id];
    await conn.write(new Uint8Array([0x10, body.length, ...body]));
    const reply = new Uint8Array(4);
    let read = 0;
    while (read < 4) {
      const n = await conn.read(reply.subarray(read));
      if (n === null) return false;
      read += n;
    }
    return reply[0] === 0x20 && reply[3] === 0;
  } finally {
    conn.close();
  }
}

Deno.test({
  name:
    "serve out of open files refuses connections, counts and logs them, and keeps serving after",
  ignore: !(await hasPrlimit()),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const serve = await serveChild(
      {
        FLOTILLA_DATA_DIR: join(root, "data"),
        FLOTILLA_POLICY_DIR: POLICY_DIR,
        FLOTILLA_ADMIN_TOKEN: ADMIN_TOKEN,
      },
      60_000,
      { nofile: NOFILE },
    );
    let code: number | undefined;
    try {
      const mqtt = /^\s*MQTT\s+mqtt:\/\/[^:\s]+:(\d+)/m.exec(serve.output());
      assert.ok(mqtt, serve.output());
      const mqttPort = Number(mqtt[1]);
      const apiPort = Number(new URL(serve.apiUrl).port);
      assert.equal((await fetch(`${serve.apiUrl}/healthz`)).status, 200);

      // Hold more MQTT connections open than the child has files for.
      const held: Deno.Conn[] = [];
      for (let i = 0; i < FLOOD; i++) {
        held.push(await Deno.connect({ hostname: "127.0.0.1", port: mqttPort }));
      }
      await until(
        "the broker's refusal in the log",
        () => /mqtt listener: accept failed/.test(serve.output()),
      );
      // An HTTP connection while out of files: refused, and the API listens again afterwards.
      const extra: Deno.Conn[] = [];
      for (let i = 0; i < 5; i++) {
        try {
          extra.push(await Deno.connect({ hostname: "127.0.0.1", port: apiPort }));
        } catch {
          // Refused while the listener binds again: that is allowed.
        }
      }
      await until(
        "the API's refusal in the log",
        () => /http listener: accept failed/.test(serve.output()),
      );
      for (const conn of [...held, ...extra]) conn.close();

      await until("/healthz again", async () => {
        try {
          const response = await fetch(`${serve.apiUrl}/healthz`);
          await response.body?.cancel();
          return response.status === 200;
        } catch {
          return false;
        }
      });
      await until("an MQTT CONNACK again", async () => {
        try {
          return await mqttConnects(mqttPort);
        } catch {
          return false;
        }
      });
      const metrics = await (await fetch(`${serve.apiUrl}/metrics`)).text();
      assert.ok(counter(metrics, "flotilla_accept_errors_total", `listener="mqtt"`) > 0, metrics);
      assert.ok(counter(metrics, "flotilla_accept_errors_total", `listener="http"`) > 0, metrics);
      assert.doesNotMatch(serve.output(), /os error 24\)\s*$/);
    } finally {
      code = await serve.stop();
      await Deno.remove(root, { recursive: true });
    }
    // SIGTERM's orderly stop, not the exit of an error.
    assert.equal(code, 0, serve.output());
  },
});
