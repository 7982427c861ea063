/**
 * Cluster benchmark: 1, 2 and 3 flotilla nodes (`main.ts serve` child processes) on one PostgreSQL
 * and one Mosquitto, with real device agents on one MQTT connection in this process
 * (tests/orchestrator/_cluster.ts). All of them share this machine's cores, so the N-node figures
 * are what N nodes do on the same cores, not what N machines would do.
 *
 * - Throughput: a fixed fleet (FLOTILLA_BENCH_CLUSTER_DEVICES, default 3000) is split into N equal
 *   slices; rollout i (targets: its slice's ids) is created on node i, which owns it. Measured:
 *   devices / seconds from the first create request to the last device's RESPONSE 0x10 (its
 *   confirmed activation), as the devices themselves saw it; and the CPU time the nodes (summed)
 *   and this process (the devices) spent over that span, per device.
 * - Takeover: three nodes, one rate-limited rollout; the owner (read from the API) is SIGKILLed 5
 *   times (a fresh node replaces each dead one). Measured: from the SIGKILL to the first frame a
 *   device receives from the new owner, for each lease TTL (FLOTILLA_BENCH_CLUSTER_TTLS, default
 *   1500,10000 ms). A frame counts as the new owner's when it arrives at least TTL/2 after the kill:
 *   the dead owner renewed its lease at most TTL/3 before it died, so no other node can claim it
 *   sooner than 2·TTL/3 after, and a frame the dead node had already handed to the broker arrives
 *   within milliseconds (the frames arriving before are counted as `stragglers`).
 *
 * Needs PostgreSQL (FLOTILLA_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres;
 * a fresh database per run, dropped after) and an MQTT broker (FLOTILLA_TEST_MQTT_URL, default
 * mqtt://127.0.0.1:1883). Writes bench/out/cluster.json.
 */
import { cpuMs, loadAverage } from "./proc.ts";

const databaseServer = Deno.env.get("FLOTILLA_TEST_DATABASE_URL") ||
  "postgres://postgres@127.0.0.1:5432/postgres";
// The helpers print that cluster tests are skipped without it; here it is the server above.
Deno.env.set("FLOTILLA_TEST_DATABASE_URL", databaseServer);
if (!Deno.env.get("FLOTILLA_TEST_MQTT_URL")) {
  Deno.env.set("FLOTILLA_TEST_MQTT_URL", "mqtt://127.0.0.1:1883");
}
// After the variables are set: the helpers read it when loaded.
const { createTestDatabase } = await import("../tests/db/_postgres.ts");
const { clusterEnv, Fleet, MQTT_URL, serveArtifact, startNode } = await import(
  "../tests/orchestrator/_cluster.ts"
);
type Node = Awaited<ReturnType<typeof startNode>>;
type Fleet = Awaited<ReturnType<typeof Fleet.start>>;

const DEVICES = Number(Deno.env.get("FLOTILLA_BENCH_CLUSTER_DEVICES") ?? 3000);
const NODES = (Deno.env.get("FLOTILLA_BENCH_CLUSTER_NODES") ?? "1,2,3").split(",").map(Number);
const TTLS = (Deno.env.get("FLOTILLA_BENCH_CLUSTER_TTLS") ?? "1500,10000").split(",").map(Number);
const KILLS = 5;
const TAKEOVER_DEVICES = 600;

const THROUGHPUT_POLICY = `name: bench-cluster
description: Two stages straight through, no bake, no rate limit
stages:
  - percent: 10
  - percent: 100
concurrency: 500
success: { minPercent: 99 }
failure: { maxPercent: 5, minDevices: 20, action: abort, scope: overall }
retry: { attempts: 5, backoff: 1s, maxBackoff: 5s, on: [fc, fd, fe, timeout] }
timeouts: { response: 30s, activation: 30s }
activation: immediate
`;

// Ten devices a second: the rollout stays under way through five takeovers of up to 15 s each.
const TAKEOVER_POLICY = `name: bench-takeover
description: One slow stage, so that the rollout is still under way at every kill
stages:
  - percent: 100
concurrency: 50
rate: { perMinute: 600 }
success: { minPercent: 90 }
failure: { maxPercent: 20, minDevices: 10, action: pause }
retry: { attempts: 10, backoff: 1s, maxBackoff: 2s, on: [fc, fd, fe, timeout] }
timeouts: { response: 20s, activation: 20s }
activation: immediate
`;

/** A fresh database, N nodes (n1.. started one after another), an artifact and a fleet. */
async function cluster(options: {
  nodes: number;
  devices: number;
  ttlMs: number;
  onFrame?: (n: number) => void;
}) {
  const database = await createTestDatabase(databaseServer);
  const root = await Deno.makeTempDir({ prefix: "flotilla-bench-cluster-" });
  const env = await clusterEnv(root, database.url, {
    policies: { "bench-cluster": THROUGHPUT_POLICY, "bench-takeover": TAKEOVER_POLICY },
    leaseTtlMs: options.ttlMs,
  });
  const bytes = crypto.getRandomValues(new Uint8Array(4096));
  const host = serveArtifact(bytes);
  const nodes: Node[] = [];
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
    for (let i = 1; i <= options.nodes; i++) nodes.push(await startNode(env, `n${i}`));
    const digest = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const artifact = await nodes[0]!.api("POST", "/v1/artifacts", {
      url: host.url,
      digest,
      size: bytes.length,
    });
    if (artifact.status !== 201) throw new Error(`artifact: ${JSON.stringify(artifact.body)}`);
    const onFrame = options.onFrame;
    fleet = await Fleet.start(options.devices, {
      serverKey: env.serverKey,
      mqttUrl: MQTT_URL!,
      onFrame: onFrame ? () => onFrame(performance.now()) : undefined,
    });
    const registered = await nodes[0]!.api("POST", "/v1/devices/batch", {
      devices: fleet.devices.map((d) => ({ id: d.id, publicKey: d.publicKey })),
    });
    if (registered.status !== 201) throw new Error(`register: ${JSON.stringify(registered.body)}`);
    return { env, nodes, fleet, digest, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function create(node: Node, digest: string, policy: string, ids: string[]) {
  const created = await node.api("POST", "/v1/rollouts", {
    artifact: { digest },
    policy,
    targets: { ids },
  });
  if (created.status !== 201) throw new Error(`create: ${JSON.stringify(created.body)}`);
  return created.body as { id: string; owner: string };
}

/** Polls every `every` ms until `check` gives a value, or throws after `ms`. */
async function poll<T>(
  check: () => Promise<T | undefined> | T | undefined,
  ms: number,
  every = 20,
) {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`gave up after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

async function throughput(n: number) {
  const loadBefore = loadAverage();
  const run = await cluster({ nodes: n, devices: DEVICES, ttlMs: 10_000 });
  try {
    const ids = run.fleet.devices.map((d) => d.id);
    const slice = Math.ceil(ids.length / n);
    const cpu = () => ({
      nodes: run.nodes.reduce((sum, node) => sum + cpuMs(node.pid), 0),
      fleet: cpuMs("self"),
    });
    const cpuFrom = cpu();
    const started = performance.now();
    const rollouts = await Promise.all(
      run.nodes.map((node, i) =>
        create(node, run.digest, "bench-cluster", ids.slice(i * slice, (i + 1) * slice))
      ),
    );
    await poll(() => run.fleet.activated() === DEVICES ? true : undefined, 600_000);
    const seconds = (performance.now() - started) / 1000;
    const cpuTo = cpu();
    const owners = rollouts.map((r) => r.owner);
    const row = {
      nodes: n,
      devices: DEVICES,
      rollouts: n,
      owners: owners.join(","),
      seconds: round(seconds, 2),
      devicesPerSecond: Math.round(DEVICES / seconds),
      nodesCpuMsPerDevice: round((cpuTo.nodes - cpuFrom.nodes) / DEVICES, 2),
      fleetCpuMsPerDevice: round((cpuTo.fleet - cpuFrom.fleet) / DEVICES, 2),
      violations: run.fleet.violations().length,
      loadAverage: { before: loadBefore, after: loadAverage() },
    };
    console.log(JSON.stringify(row));
    return row;
  } finally {
    await run.close();
  }
}

async function takeover(ttlMs: number) {
  const loadBefore = loadAverage();
  const frames: number[] = [];
  const run = await cluster({
    nodes: 3,
    devices: TAKEOVER_DEVICES,
    ttlMs,
    onFrame: (at) => frames.push(at),
  });
  const kills: { killed: string; newOwner: string; ms: number; stragglers: number }[] = [];
  try {
    const ids = run.fleet.devices.map((d) => d.id);
    const rollout = await create(run.nodes[0]!, run.digest, "bench-takeover", ids);
    let next = run.nodes.length + 1;
    const owner = async (live: Node[]) => {
      const { body } = await live[0]!.api("GET", `/v1/rollouts/${rollout.id}`);
      return body as { owner: string | null; state: string };
    };
    for (let k = 0; k < KILLS; k++) {
      // Frames flowing from the current owner first.
      const mark = frames.length;
      await poll(() => frames.length >= mark + 5 ? true : undefined, 60_000);
      const state = await owner(run.nodes);
      if (state.state !== "running" || !state.owner) break;
      const victim = run.nodes.find((node) => node.id === state.owner)!;
      const killedAt = performance.now();
      await victim.kill();
      run.nodes.splice(run.nodes.indexOf(victim), 1);
      const after = frames.length;
      const first = await poll(
        () => {
          for (let i = after; i < frames.length; i++) {
            if (frames[i]! - killedAt >= ttlMs / 2) return i;
          }
          return undefined;
        },
        120_000,
        5,
      );
      const ms = frames[first]! - killedAt;
      const stragglers = first - after;
      const newOwner = (await owner(run.nodes)).owner ?? "?";
      kills.push({ killed: victim.id, newOwner, ms: Math.round(ms), stragglers });
      console.error(
        `  ttl ${ttlMs}: killed ${victim.id}, ${newOwner} sent after ${round(ms, 0)} ms`,
      );
      // A fresh node in place of the dead one, so that three are up at the next kill.
      run.nodes.push(await startNode(run.env, `n${next++}`));
    }
  } finally {
    await run.close();
  }
  const sorted = kills.map((k) => k.ms).sort((a, b) => a - b);
  const row = {
    ttlMs,
    kills: kills.length,
    p50Ms: sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)]! : null,
    maxMs: sorted.length ? sorted[sorted.length - 1]! : null,
    each: kills,
    loadAverage: { before: loadBefore, after: loadAverage() },
  };
  console.log(JSON.stringify(row));
  return row;
}

const cores = navigator.hardwareConcurrency;
const throughputRows = [];
for (const n of NODES) throughputRows.push(await throughput(n));
const takeoverRows = [];
for (const ttl of TTLS) takeoverRows.push(await takeover(ttl));
await Deno.mkdir(new URL("./out", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./out/cluster.json", import.meta.url),
  JSON.stringify(
    { at: new Date().toISOString(), cores, throughput: throughputRows, takeover: takeoverRows },
    null,
    2,
  ) + "\n",
);
console.table(throughputRows.map(({ loadAverage, ...row }) => ({
  ...row,
  load: loadAverage.before.join(" "),
})));
console.table(takeoverRows.map(({ loadAverage, each: _, ...row }) => ({
  ...row,
  load: loadAverage.before.join(" "),
})));
