import assert from "node:assert/strict";
import { createServer } from "node:net";
import { join } from "node:path";
import {
  createDeviceAgent,
  FileDeviceStore,
  loadIdentity,
  provisionDevice,
} from "../../device/mod.ts";
import { connectMqtt, deviceTopic, type MqttConnection, RejectionCounter } from "../../mqtt/mod.ts";
import {
  ACTIVATE_SUCCESS,
  decodeMessage,
  fromBase64,
  toHex,
  UPDATE_SUCCESS,
} from "../../srup/mod.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const TOKEN = "crash-test-admin-token-0123456789";
const DEVICES = 40;

// Short waits so a frame lost with the killed broker is retried within seconds.
const POLICY = `name: crash
stages:
  - percent: 10
  - percent: 50
  - percent: 100
concurrency: 8
success: { minPercent: 100 }
retry: { attempts: 10, backoff: 300ms, maxBackoff: 1s, on: [fc, fd, fe, timeout] }
timeouts: { response: 3s, activation: 3s }
activation: immediate
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** What one device saw and said, in order. */
interface Log {
  /** [kind, token hex, sequence] of every frame received from the server. */
  received: [string, string, bigint | undefined][];
  /** [token hex, status] of every RESPONSE sent. */
  sent: [string, number][];
}

async function startLoggedDevice(
  dir: string,
  serverKey: Uint8Array,
  broker: string,
  log: Log,
  rejections: RejectionCounter,
): Promise<MqttConnection> {
  const identity = await loadIdentity(dir);
  const { promise: connected, resolve } = Promise.withResolvers<MqttConnection>();
  const agent = await createDeviceAgent({
    deviceId: identity.id,
    privateKey: identity.privateKey,
    serverKey,
    store: new FileDeviceStore(dir),
    rejections,
    publish: async (topic, frame) => {
      const message = decodeMessage(frame);
      if (message.type === "response") log.sent.push([toHex(message.token), message.status]);
      await (await connected).publish(topic, frame);
    },
  });
  const connection = await connectMqtt(broker, {
    clientId: `crash-device-${identity.id}`,
    clean: false,
    reconnectMinMs: 100,
    reconnectMaxMs: 500,
    onMessage(topic, payload) {
      if (topic !== agent.topic) return;
      try {
        const message = decodeMessage(payload);
        log.received.push([message.type, toHex(message.token), message.sequence]);
      } catch {
        // The agent counts malformed frames itself.
      }
      agent.handleFrame(payload);
    },
  });
  resolve(connection);
  await connection.subscribe(deviceTopic(identity.id));
  return connection;
}

function serve(env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "serve"],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function waitForLine(
  child: Deno.ChildProcess,
  pattern: RegExp,
  ms = 90_000,
): Promise<string> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let errors = "";
  child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (errors += chunk) }),
  ).catch(() => {});
  let text = "";
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel();
  }, ms);
  try {
    while (!pattern.test(text)) {
      const { value, done } = await reader.read();
      if (done) {
        const why = timedOut
          ? `printed no ${pattern} within ${ms} ms`
          : `ended before printing ${pattern}`;
        throw new Error(`serve ${why}: ${text}${errors}`);
      }
      text += value;
    }
    return text;
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
    child.stdout.pipeTo(new WritableStream()).catch(() => {});
  }
}

async function call(base: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

Deno.test({
  name: "serve killed with SIGKILL mid-rollout resumes it and keeps every recovery promise",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const policyDir = join(root, "policies");
    await Deno.mkdir(policyDir);
    await Deno.writeTextFile(join(policyDir, "crash.yaml"), POLICY);
    const [httpPort, mqttPort] = [await freePort(), await freePort()];
    const env = {
      FLOTILLA_DATA_DIR: join(root, "data"),
      FLOTILLA_POLICY_DIR: policyDir,
      FLOTILLA_ADMIN_TOKEN: TOKEN,
      PORT: String(httpPort),
      FLOTILLA_MQTT_PORT: String(mqttPort),
      NO_COLOR: "1",
    };
    const base = `http://127.0.0.1:${httpPort}`;
    const broker = `mqtt://127.0.0.1:${mqttPort}`;
    let child = serve(env);
    const connections: MqttConnection[] = [];
    const rejections = new RejectionCounter();
    try {
      await waitForLine(child, /public key (\S+)/);
      const server = (await call(base, "GET", "/v1/server")).body;
      const serverKey = fromBase64(server.publicKey);
      const logs = new Map<string, Log>();
      for (let i = 0; i < DEVICES; i++) {
        const dir = join(root, `device-${i}`);
        const identity = await provisionDevice(dir);
        const registered = await call(base, "POST", "/v1/devices", {
          id: identity.id,
          publicKey: identity.publicKey.toBase64(),
        });
        assert.equal(registered.status, 201);
        const log: Log = { received: [], sent: [] };
        logs.set(identity.id, log);
        connections.push(await startLoggedDevice(dir, serverKey, broker, log, rejections));
      }
      const artifact = crypto.getRandomValues(new Uint8Array(16 * 1024));
      const uploaded = await fetch(`${base}/v1/artifacts`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/octet-stream" },
        body: artifact,
      }).then((r) => r.json());
      const rollout = (await call(base, "POST", "/v1/rollouts", {
        artifact: { digest: uploaded.digest },
        policy: "crash",
        targets: { all: true },
      })).body;

      // Kill once a third of the fleet is activated, with devices in every phase.
      const before = await until("a third activated", async () => {
        const r = (await call(base, "GET", `/v1/rollouts/${rollout.id}`)).body;
        return r.counts.activated >= DEVICES / 3 ? r : undefined;
      });
      const devicesBefore =
        (await call(base, "GET", `/v1/rollouts/${rollout.id}/devices?limit=1000`)).body
          .items as { deviceId: string; state: string }[];
      child.kill("SIGKILL");
      await child.status;
      const killedAt = new Map([...logs].map(([id, log]) => [id, log.received.length]));

      child = serve(env);
      await waitForLine(child, /public key/);
      const done = await until("completed", async () => {
        const r = (await call(base, "GET", `/v1/rollouts/${rollout.id}`)).body;
        return r.state === "completed" ? r : undefined;
      }, 90_000);
      assert.equal(done.counts.activated, DEVICES);
      assert.ok(before.counts.activated < DEVICES, "the kill came before the end");

      // No committed state is lost: a device activated before the kill is still activated.
      const devicesAfter = new Map(
        ((await call(base, "GET", `/v1/rollouts/${rollout.id}/devices?limit=1000`)).body
          .items as { deviceId: string; state: string }[]).map((d) => [d.deviceId, d.state]),
      );
      for (const device of devicesBefore) {
        if (device.state === "activated") {
          assert.equal(devicesAfter.get(device.deviceId), "activated");
        }
      }

      for (const [id, log] of logs) {
        // No ACTIVATE for a token the device had not answered 0x00 for.
        const received = new Set(log.sent.filter(([, s]) => s === UPDATE_SUCCESS).map(([t]) => t));
        for (const [kind, token] of log.received) {
          if (kind === "activate") {
            assert.ok(received.has(token), `${id}: ACTIVATE for unanswered token`);
          }
        }
        // No new INITIATE after the device confirmed its activation.
        const confirmed = log.sent.findIndex(([, s]) => s === ACTIVATE_SUCCESS);
        assert.ok(confirmed >= 0, `${id}: never confirmed`);
        const confirmedToken = log.sent[confirmed]![0];
        const activateAt = log.received.findIndex(([k, t]) =>
          k === "activate" && t === confirmedToken
        );
        const later = log.received.slice(activateAt + 1).filter(([kind]) => kind === "initiate");
        assert.deepEqual(later, [], `${id}: INITIATE after activation`);
        // The server's sequence ids only ever increase, across the restart too.
        const sequences = log.received.map(([, , s]) => s!);
        for (let i = 1; i < sequences.length; i++) {
          assert.ok(
            sequences[i]! > sequences[i - 1]!,
            `${id}: sequence went from ${sequences[i - 1]} to ${sequences[i]}`,
          );
        }
        const cut = killedAt.get(id)!;
        if (cut > 0 && cut < sequences.length) assert.ok(sequences[cut]! > sequences[cut - 1]!);
      }
      // The device agents never had to drop a frame from the server.
      assert.deepEqual(rejections.toJSON(), {});
    } finally {
      await Promise.all(connections.map((c) => c.close()));
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
      await Deno.remove(root, { recursive: true });
    }
  },
});
