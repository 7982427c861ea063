/**
 * The database goes away mid-rollout while devices confirm their activations (PostgreSQL stopped,
 * PGlite's disk full): no confirmation is lost, and afterwards the database agrees with what every
 * device itself did.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createDeviceAgent,
  FileDeviceStore,
  loadIdentity,
  provisionDevice,
  readState,
} from "../../device/mod.ts";
import { connectMqtt, deviceTopic, type MqttConnection } from "../../mqtt/mod.ts";
import { ACTIVATE_SUCCESS, decodeMessage, fromBase64, toHex } from "../../srup/mod.ts";
import {
  getDevice,
  getRollout,
  listEvents,
  listRolloutDevices,
  openDatabase,
} from "../../db/mod.ts";
import { readConfig } from "../../orchestrator/config.ts";
import { type Service, startService } from "../../app/service.ts";
import { ADMIN_TOKEN, api, POLICY_DIR, upload } from "./_service.ts";
import { PRIVATE_POSTGRES_UNAVAILABLE, startPrivatePostgres } from "../db/_private_postgres.ts";
import { canMountTmpfs, mountTmpfs } from "../_helpers.ts";

const OUTAGE_MS = 5_000;

// Generous waits: the outage must not fail a device, only delay it.
const POLICY = {
  name: "outage",
  stages: [{ percent: 100 }],
  concurrency: 100,
  success: { minPercent: 100 },
  retry: { attempts: 20, backoff: "300ms", maxBackoff: "1s", on: ["fc", "fd", "fe", "timeout"] },
  timeouts: { response: "60s", activation: "60s" },
  activation: "immediate",
};

/** A device agent whose ACTIVATE_SUCCESS RESPONSEs wait for `gate`, and what it sent. */
interface GatedDevice {
  id: string;
  dir: string;
  connection: MqttConnection;
  /** Hex token of the 0x10 RESPONSE it sent (or holds), once activated. */
  confirmed?: string;
}

async function startGatedDevice(
  dir: string,
  service: Service,
  gate: Promise<void>,
  held: Set<string>,
): Promise<GatedDevice> {
  const identity = await loadIdentity(dir);
  const device: GatedDevice = { id: identity.id, dir, connection: undefined! };
  const { promise: connected, resolve } = Promise.withResolvers<MqttConnection>();
  const agent = await createDeviceAgent({
    deviceId: identity.id,
    privateKey: identity.privateKey,
    serverKey: fromBase64(service.publicKey),
    serverId: service.serverId,
    store: new FileDeviceStore(dir),
    publish: async (topic, frame) => {
      const message = decodeMessage(frame);
      if (message.type === "response" && message.status === ACTIVATE_SUCCESS) {
        device.confirmed = toHex(message.token);
        held.add(identity.id);
        await gate;
      }
      await (await connected).publish(topic, frame);
    },
  });
  device.connection = await connectMqtt(service.mqttUrl, {
    clientId: `outage-device-${identity.id}`,
    clean: false,
    onMessage(topic, payload) {
      if (topic === agent.topic) agent.handleFrame(payload);
    },
  });
  resolve(device.connection);
  await device.connection.subscribe(deviceTopic(identity.id));
  return device;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** What an outage test does to the database, and how it opens it to check afterwards. */
interface Outage {
  env: Record<string, string>;
  devices: number;
  break(): Promise<void>;
  /** Checks made while the database is broken. */
  during(service: Service, lines: string[]): Promise<void>;
  repair(): Promise<void>;
  open(): ReturnType<typeof openDatabase>;
}

async function rolloutThroughOutage(root: string, outage: Outage): Promise<void> {
  const DEVICES = outage.devices;
  const lines: string[] = [];
  const service = await startService(
    readConfig({
      FLOTILLA_DATA_DIR: join(root, "data"),
      FLOTILLA_POLICY_DIR: POLICY_DIR,
      FLOTILLA_ADMIN_TOKEN: ADMIN_TOKEN,
      PORT: "0",
      FLOTILLA_MQTT_PORT: "0",
      ...outage.env,
    }),
    { log: (line) => lines.push(line) },
  );
  const gate = Promise.withResolvers<void>();
  const held = new Set<string>();
  const devices: GatedDevice[] = [];
  let rolloutId: string;
  let digest: string;
  try {
    for (let i = 0; i < DEVICES; i++) {
      const dir = join(root, `device-${i}`);
      const identity = await provisionDevice(dir);
      const registered = await api(service, "POST", "/v1/devices", {
        id: identity.id,
        publicKey: identity.publicKey.toBase64(),
      });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      devices.push(await startGatedDevice(dir, service, gate.promise, held));
    }
    digest = await upload(service, crypto.getRandomValues(new Uint8Array(8 * 1024)));
    const created = await api(service, "POST", "/v1/rollouts", {
      artifact: { digest },
      policy: POLICY,
      targets: { all: true },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    rolloutId = created.body.id as string;

    // Every device has activated and holds its confirmation: they all reach the server in the outage.
    await until(
      "every device activated",
      () => Promise.resolve(held.size === DEVICES ? true : undefined),
    );
    await outage.break();
    gate.resolve();
    const outageStarted = Date.now();
    await outage.during(service, lines);
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS - (Date.now() - outageStarted)));
    await outage.repair();

    const done = await until("the rollout completed", async () => {
      const rollout = await api(service, "GET", `/v1/rollouts/${rolloutId}`);
      return rollout.body.state === "completed" ? rollout.body : undefined;
    });
    assert.equal((done.counts as Record<string, number>).activated, DEVICES);
    assert.ok(
      lines.some((line) => /^database: cannot commit \d+ writes, retrying in \d+ ms: /.test(line)),
      "the failed commits were logged",
    );
    for (const line of lines) {
      assert.ok(!/Failed query|insert into|params:|"snapshot"/i.test(line), `log line: ${line}`);
    }
  } finally {
    gate.resolve();
    for (const device of devices) await device.connection.close();
    await service.close();
  }

  // The database, read afresh, agrees with every device's own record.
  const database = await outage.open();
  try {
    const { db } = database;
    assert.equal((await getRollout(db, rolloutId))?.state, "completed");
    const rows = new Map(
      (await listRolloutDevices(db, rolloutId, { limit: 1000 })).items.map((
        row,
      ) => [row.deviceId, row]),
    );
    const activated = (await listEvents(db, { rolloutId, limit: 1000 }))
      .filter((event) => event.type === "device.activated").map((event) => event.deviceId);
    for (const device of devices) {
      const own = await readState(device.dir);
      assert.equal(own?.current?.digest, digest, `${device.id} runs the artifact`);
      assert.equal(rows.get(device.id)?.state, "activated", `${device.id}: row state`);
      assert.equal(rows.get(device.id)?.token, device.confirmed, `${device.id}: row token`);
      assert.equal(
        activated.filter((id) => id === device.id).length,
        1,
        `${device.id}: one device.activated event`,
      );
      assert.equal((await getDevice(db, device.id))?.currentDigest, digest, `${device.id}: digest`);
    }
  } finally {
    await database.close();
  }
}

Deno.test({
  name:
    "PostgreSQL stopped mid-rollout: every confirmation sent meanwhile is written once it is back",
  ignore: PRIVATE_POSTGRES_UNAVAILABLE !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const pg = await startPrivatePostgres();
    try {
      await rolloutThroughOutage(root, {
        env: { DATABASE_URL: pg.url },
        devices: 12,
        break: () => pg.stop("fast"),
        async during(service) {
          const ready = await fetch(`${service.apiUrl}/readyz`);
          assert.equal(ready.status, 503);
          // The writer reports its latest failure: ECONNREFUSED once it retries against the stopped
          // server, but ECONNRESET (or PostgreSQL's 57P01 "terminating connection due to
          // administrator command") if this probe comes while the commit cut by the shutdown is the
          // latest, or postgres.js's CONNECTION_CLOSED when the socket closed under a write. Each
          // names the lost connection; seen under load: ECONNRESET and CONNECTION_CLOSED.
          assert.match(
            (await ready.json()).checks.database,
            /ECONNREFUSED|ECONNRESET|CONNECTION_CLOSED|terminating connection due to administrator command/,
          );
          const rollouts = await api(service, "GET", "/v1/rollouts");
          assert.equal(rollouts.status, 503);
          assert.equal(
            (rollouts.body.error as Record<string, unknown>).code,
            "database_unavailable",
          );
        },
        repair: () => pg.start(),
        open: () => openDatabase({ url: pg.url }),
      });
    } finally {
      await pg.destroy();
      await Deno.remove(root, { recursive: true });
    }
  },
});

const TMPFS_POSSIBLE = await canMountTmpfs();

Deno.test({
  name: "PGlite's disk full mid-rollout: the cause is logged in one line and nothing is lost",
  // Mounting needs root; without it this test cannot fill a disk of its own.
  ignore: !TMPFS_POSSIBLE,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await mountTmpfs(160);
    assert.ok(root, "a tmpfs mounted a moment ago cannot be mounted now");
    const filler = join(root, "filler");
    try {
      await rolloutThroughOutage(root, {
        env: {},
        // Enough confirmations that their rows cannot all fit in pages PGlite already has.
        devices: 40,
        async break() {
          const file = await Deno.open(filler, { write: true, create: true });
          const chunk = new Uint8Array(1024 * 1024);
          try {
            for (;;) await file.write(chunk);
          } catch (error) {
            assert.equal((error as { code?: string }).code, "ENOSPC");
          } finally {
            file.close();
          }
          // The last few KiB too, so the next write PGlite makes fails.
          const small = await Deno.open(filler, { append: true });
          try {
            for (;;) await small.write(new Uint8Array(512));
          } catch {
            // Full.
          } finally {
            small.close();
          }
        },
        async during(service, lines) {
          await until("the failed commit logged", () =>
            Promise.resolve(
              lines.find((line) =>
                /^database: cannot commit \d+ writes, retrying in \d+ ms: could not (extend|write) .*No space left on device \(SQLSTATE 53100\)$/
                  .test(line)
              ),
            ), 10_000);
          const ready = await fetch(`${service.apiUrl}/readyz`);
          assert.equal(ready.status, 503);
          assert.match((await ready.json()).checks.database, /No space left on device/);
          // Every device confirmed, but the rollout is not completed while its rows are not written.
          const rollout = await api(service, "GET", "/v1/rollouts");
          const mine = (rollout.body.items as { state: string }[])[0]!;
          assert.notEqual(mine.state, "completed");
          const uploaded = await fetch(`${service.apiUrl}/v1/artifacts`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${ADMIN_TOKEN}`,
              "content-type": "application/octet-stream",
            },
            body: new Uint8Array(256 * 1024),
          });
          assert.equal(uploaded.status, 507);
          assert.equal((await uploaded.json()).error.code, "insufficient_storage");
        },
        repair: () => Deno.remove(filler),
        open: () => openDatabase({ dataDir: join(root, "data") }),
      });
    } finally {
      await new Deno.Command("umount", { args: [root] }).output();
      await Deno.remove(root, { recursive: true });
    }
  },
});
