/**
 * Three nodes as child processes on one PostgreSQL and one Mosquitto, 240 real device agents: the
 * owner of a rollout is SIGKILLed (or SIGSTOPped past its lease) mid-rollout and another node
 * finishes it, as the devices themselves saw it.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createTestDatabase } from "../db/_postgres.ts";
import {
  ADMIN_TOKEN,
  CLUSTER_SKIP,
  clusterEnv,
  Fleet,
  MQTT_URL,
  type Node,
  RABBITMQ_MQTT_URL,
  RABBITMQ_SKIP,
  serveArtifact,
  startNode,
  until,
} from "./_cluster.ts";

const DEVICES = 240;
// Short leases keep the test quick: a dead node's rollout moves within about 1.5 s.
const LEASE_TTL_MS = 1_500;

const POLICY = `name: cluster
description: A quick rollout for cluster tests
stages:
  - percent: 10
  - percent: 100
concurrency: 40
rate: { perMinute: 2400 }
success: { minPercent: 90 }
failure: { maxPercent: 20, minDevices: 10, action: pause }
retry: { attempts: 10, backoff: 1s, maxBackoff: 2s, on: [fc, fd, fe, timeout] }
timeouts: { response: 4s, activation: 4s }
activation: immediate
`;

interface Running {
  nodes: Node[];
  fleet: Fleet;
  rollout: string;
  close(): Promise<void>;
  /** The database's view, for a failure's message: the rollout's lease and the sessions. */
  diagnose(): Promise<string>;
}

/**
 * Three nodes on the broker at `mqttUrl`, the fleet registered (on the same broker), and a rollout
 * created on n1 (which owns it).
 */
async function startCluster(mqttUrl: string = MQTT_URL!): Promise<Running> {
  const database = await createTestDatabase(Deno.env.get("FLOTILLA_TEST_DATABASE_URL")!);
  const root = await Deno.makeTempDir({ prefix: "flotilla-cluster-" });
  const env = await clusterEnv(root, database.url, {
    policies: { cluster: POLICY },
    leaseTtlMs: LEASE_TTL_MS,
    mqttUrl,
  });
  const nodes: Node[] = [];
  const bytes = crypto.getRandomValues(new Uint8Array(4096));
  const host = serveArtifact(bytes);
  let fleet: Fleet | undefined;
  const close = async () => {
    await Promise.allSettled(nodes.map((node) => node.kill()));
    await fleet?.close();
    await host.close();
    await database.drop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  };
  try {
    // One after another: the first applies the migrations and records the admin token.
    for (const id of ["n1", "n2", "n3"]) nodes.push(await startNode(env, id));
    const [n1, n2] = nodes as [Node, Node];
    const digest = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const artifact = await n1.api("POST", "/v1/artifacts", {
      url: host.url,
      digest,
      size: bytes.length,
    });
    assert.equal(artifact.status, 201, JSON.stringify(artifact.body));
    fleet = await Fleet.start(DEVICES, { serverKey: env.serverKey, mqttUrl });
    const registered = await n2.api("POST", "/v1/devices/batch", {
      devices: fleet.devices.map((d) => ({ id: d.id, publicKey: d.publicKey })),
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    const created = await n1.api("POST", "/v1/rollouts", {
      artifact: { digest },
      policy: "cluster",
      targets: { all: true },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.owner, "n1");
    const rollout = created.body.id as string;
    const diagnose = async () => {
      const client = postgres(database.url, { max: 1, onnotice: () => {} });
      try {
        const lease = await client`select owner, lease_epoch, lease_expires_at, now()
          from rollouts where id = ${rollout}`;
        const sessions = await client`select pid, application_name, state, wait_event_type,
          now() - state_change as for, left(query, 120) as query from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()`;
        return JSON.stringify({ lease, sessions }, null, 1);
      } finally {
        await client.end({ timeout: 1 });
      }
    };
    return { nodes, fleet, rollout, close, diagnose };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Waits for the rollout to complete, read on `node`; the rollout's JSON. */
async function completed(node: Node, id: string, others: Node[]) {
  return await until(
    async () => {
      const { body } = await node.api("GET", `/v1/rollouts/${id}`);
      return body.state === "completed" ? body : undefined;
    },
    90_000,
    () =>
      others.map((n) => `--- ${n.id}\n${n.output.split("\n").slice(-30).join("\n")}`).join("\n"),
  );
}

/**
 * The SIGKILL test on the broker at `mqttUrl`: the owner dies mid-rollout, another node completes
 * it, and the devices' own logs keep every promise.
 */
async function sigkillOwner(t: Deno.TestContext, mqttUrl: string): Promise<void> {
  const { nodes, fleet, rollout, close } = await startCluster(mqttUrl);
  const [n1, n2, n3] = nodes as [Node, Node, Node];
  try {
    await t.step("the owner dies with part of the fleet activated", async () => {
      await until(
        () => fleet.activated() >= DEVICES / 5 ? true : undefined,
        60_000,
        () => n1.output,
      );
      await n1.kill();
      assert.ok(fleet.activated() < DEVICES, "the rollout was still under way at the kill");
    });

    await t.step("another node takes it over and completes it", async () => {
      const done = await completed(n2, rollout, [n2, n3]);
      assert.ok(done.owner === "n2" || done.owner === "n3", `owner ${done.owner}`);
      const counts = done.counts as Record<string, number>;
      assert.equal(counts.activated, DEVICES);
      const takeovers = (await n2.metric("flotilla_cluster_takeovers_total"))! +
        (await n3.metric("flotilla_cluster_takeovers_total"))!;
      // One, or more if a node under load let its lease lapse too (fenced all the same).
      assert.ok(takeovers >= 1, `takeovers ${takeovers}`);
    });

    await t.step("the devices' own logs keep every promise", async () => {
      await until(() => fleet.activated() === DEVICES ? true : undefined, 10_000, () => "");
      assert.deepEqual(fleet.violations(), []);
      assert.equal(fleet.activated(), DEVICES);
      // The API's view on the third node equals the devices' view.
      const { body } = await n3.api("GET", `/v1/rollouts/${rollout}`);
      assert.equal((body.counts as Record<string, number>).activated, fleet.activated());
    });

    await t.step("GET /v1/cluster lists the live nodes", async () => {
      const { status, body } = await n3.api<{ mode: string; nodes: { id: string }[] }>(
        "GET",
        "/v1/cluster",
      );
      assert.equal(status, 200, `${JSON.stringify(body)}\n${n3.output}`);
      assert.equal(body.mode, "cluster");
      assert.deepEqual(body.nodes.map((n) => n.id).filter((id) => id !== "n1"), ["n2", "n3"]);
    });
  } finally {
    await close();
  }
}

Deno.test({
  name: "cluster: SIGKILL of a rollout's owner mid-rollout; another node completes it",
  ignore: CLUSTER_SKIP !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) => sigkillOwner(t, MQTT_URL!),
});

// The same run over RabbitMQ's MQTT plugin: MQTT 3.1.1 only (the nodes and the fleet fall back to
// it), no shared subscriptions, topics mapped onto an AMQP topic exchange.
Deno.test({
  name:
    "cluster over RabbitMQ: SIGKILL of a rollout's owner mid-rollout; another node completes it",
  ignore: RABBITMQ_SKIP !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) => sigkillOwner(t, RABBITMQ_MQTT_URL!),
});

Deno.test({
  name: "cluster: an owner frozen past its lease (SIGSTOP) sends and writes nothing after SIGCONT",
  ignore: CLUSTER_SKIP !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const { nodes, fleet, rollout, close, diagnose } = await startCluster();
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    try {
      let owner = "";
      await t.step("another node takes over while the owner is stopped", async () => {
        await until(() => fleet.activated() >= DEVICES / 5 ? true : undefined, 60_000, () => "");
        n1.signal("SIGSTOP");
        owner = await until(
          async () => {
            const { body } = await n2.api("GET", `/v1/rollouts/${rollout}`);
            return body.owner !== "n1" && body.owner !== null ? body.owner as string : undefined;
          },
          30_000,
          async () => `${n2.output}\n${n3.output}\n${await diagnose()}`,
        );
      });

      // Frames received from here on come from the new owner: n1 is stopped. Its ids were all
      // reserved before the takeover, so they are below every one the new owner sends.
      const mark = fleet.received();
      let lowest = 0n;
      await t.step("the new owner sends from a block reserved after its claim", async () => {
        lowest = await until(() => fleet.lowestSince(mark), 30_000, () => n2.output);
      });

      const resumedAt = fleet.received();
      await t.step(
        "SIGCONT: the stale node drops the rollout without a frame or a row",
        async () => {
          n1.signal("SIGCONT");
          await until(
            () => /lost to another node/.test(n1.output) ? true : undefined,
            30_000,
            () => n1.output,
          );
          const done = await completed(owner === "n2" ? n2 : n3, rollout, [n1, n2, n3]);
          // n2 or n3: a node under load may let its lease lapse to the other, fenced all the same.
          assert.ok(done.owner === "n2" || done.owner === "n3", `owner ${done.owner}`);
          assert.equal((done.counts as Record<string, number>).activated, DEVICES);
          const stale = fleet.framesSince(resumedAt).filter((frame) => frame.sequence < lowest);
          assert.deepEqual(stale, [], "frames with the stale node's ids arrived after SIGCONT");
          assert.equal(await n1.metric("flotilla_cluster_leases"), 0);
          assert.equal(await n1.metric("flotilla_cluster_leases_lost_total"), 1);
          // Whether the frozen node had a write queued when it stopped is timing: the count may be
          // 0, so this checks the metric is exported; the frames and leases above show it stopped.
          assert.notEqual(await n1.metric("flotilla_cluster_fenced_writes_total"), undefined);
          await until(() => fleet.activated() === DEVICES ? true : undefined, 10_000, () => "");
          assert.deepEqual(fleet.violations(), []);
        },
      );
    } finally {
      await close();
    }
  },
});

Deno.test({
  name: "cluster: pause and resume on a node that does not own the rollout; its SSE shows them",
  ignore: CLUSTER_SKIP !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const { nodes, fleet, rollout, close } = await startCluster();
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    const abort = new AbortController();
    const stream = await fetch(`${n3.apiUrl}/v1/events?rollout=${rollout}&after=0`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      signal: abort.signal,
    });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const chunk of stream.body!.pipeThrough(new TextDecoderStream())) {
        for (const match of chunk.matchAll(/^event: (\S+)$/gm)) seen.push(match[1]!);
      }
    })().catch(() => {});
    try {
      await t.step("pause on n2 pauses n1's rollout", async () => {
        await until(() => fleet.activated() >= 10 ? true : undefined, 60_000, () => n1.output);
        const paused = await n2.api("POST", `/v1/rollouts/${rollout}/pause`);
        assert.equal(paused.status, 200, JSON.stringify(paused.body));
        assert.equal(paused.body.state, "paused");
        assert.equal(paused.body.owner, "n1");
        const onOwner = await n1.api("GET", `/v1/rollouts/${rollout}`);
        assert.equal(onOwner.body.state, "paused");
        const again = await n3.api("POST", `/v1/rollouts/${rollout}/pause`);
        assert.equal(again.status, 409, JSON.stringify(again.body));
      });

      await t.step("n3's event stream shows the owner's events", async () => {
        await until(
          () => seen.includes("operator.pause") && seen.includes("device.activated") || undefined,
          10_000,
          () => seen.join(", "),
        );
      });

      await t.step("resume on n3 lets it complete", async () => {
        const resumed = await n3.api("POST", `/v1/rollouts/${rollout}/resume`);
        assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
        const done = await completed(n3, rollout, [n1]);
        assert.equal((done.counts as Record<string, number>).activated, DEVICES);
        await until(() => fleet.activated() === DEVICES ? true : undefined, 10_000, () => "");
        assert.deepEqual(fleet.violations(), []);
      });
    } finally {
      abort.abort();
      await reading;
      await close();
    }
  },
});
