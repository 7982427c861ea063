/**
 * Connections benchmark: 20,000 simulated devices, each with its own MQTT connection (not gateway
 * mode), on the embedded broker (aedes in `main.ts serve`, as `deno task start` runs it) and on a
 * private Mosquitto started here with its own config. Reports the time to connect them all, the
 * rate, the RSS of the broker and of the device processes, and runs a full rollout over every
 * connection. The devices are the live simulator's (sim/fleet.ts: real agents, real SRUP, real
 * HTTP downloads), in child processes of this one so that no process holds more sockets than its
 * file limit allows.
 *
 * FLOTILLA_BENCH_CONNECTIONS=20000 (devices), FLOTILLA_BENCH_BROKERS=embedded,mosquitto,
 * MOSQUITTO=/usr/sbin/mosquitto (the binary), DATABASE_URL (PostgreSQL instead of PGlite).
 */
import { parse as parseYaml } from "yaml";
import { latencyStats, loadSimKeys, NO_FAULTS } from "../sim/mod.ts";
import { type Fleet, type FleetResults, startFleet } from "../sim/fleet.ts";
import { fromBase64, toBase64 } from "../srup/mod.ts";
import { type BenchOrchestrator, startOrchestrator, startTaskV8Flags } from "./orchestrator.ts";
import { cpuMs, freePort, loadAverage, mb, memory } from "./proc.ts";

const KEY_DIR = ".sim-cache/sim-keys";
// Files the broker's process keeps besides its MQTT connections: the orchestrator with PGlite held
// about 140 at 19,860 connections (PGlite's relation files, stdio, listeners) and then accepted no
// more; during the rollout the downloads' HTTP connections (kept alive) added about 840 more at
// 500 in flight (bench/connections.yaml); past the limit the orchestrator refuses connections.
const FD_HEADROOM = 1500;
// A broker out of files leaves connections queued, never refused: fail instead of waiting forever.
const CONNECT_TIMEOUT_MS = 600_000;
const REGISTER_BATCH = 5000;

/** What a device process is told on its stdin: a slice of the fleet. */
interface FleetSlice {
  ids: string[];
  /** Base64 of 32-byte seeds back to back. */
  seeds: string;
  serverKey: string;
  serverId: string;
  mqttUrl: string;
  name: string;
}

if (Deno.args[0] === "--fleet") {
  await runDeviceProcess();
} else {
  await main();
}

/** A device process: runs its slice of the fleet, answers `collect` and `stop` on stdin. */
async function runDeviceProcess(): Promise<void> {
  const lines = readLines(Deno.stdin.readable);
  const slice = JSON.parse((await lines.next()).value as string) as FleetSlice;
  const fleet: Fleet = await startFleet({
    ids: slice.ids,
    seeds: fromBase64(slice.seeds),
    serverKey: fromBase64(slice.serverKey),
    serverId: slice.serverId,
    mqttUrl: slice.mqttUrl,
    gateway: false,
    faults: NO_FAULTS,
    latency: null,
    offline: 0,
    offlineMs: 0,
    crash: 0,
    restartMs: 0,
    seed: 1,
    name: slice.name,
  });
  say({ type: "ready", connecting: fleet.connecting });
  for await (const line of lines) {
    if (line === "collect") {
      const results = fleet.results();
      say({
        type: "results",
        initiatedAt: Array.from(results.initiatedAt),
        activatedAt: Array.from(results.activatedAt),
        rejected: results.rejected,
      });
    } else if (line === "stop") {
      break;
    }
  }
  await fleet.close();
  say({ type: "stopped" });
}

function say(message: unknown): void {
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(message) + "\n"));
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let at;
    while ((at = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
    }
  }
}

/** A device process seen from the bench. */
interface DeviceProcess {
  pid: number;
  ready: Promise<{ connecting: { from: number; to: number } }>;
  collect(): Promise<Pick<FleetResults, "initiatedAt" | "activatedAt" | "rejected">>;
  stop(): Promise<void>;
}

function spawnDeviceProcess(slice: FleetSlice): DeviceProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(import.meta.url).pathname, "--fleet"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const send = (line: string) => writer.write(new TextEncoder().encode(line + "\n"));
  const lines = readLines(child.stdout);
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`Device process ${child.pid} ended early`);
    return JSON.parse(value);
  };
  const ready = send(JSON.stringify(slice)).then(next);
  return {
    pid: child.pid,
    ready,
    async collect() {
      await send("collect");
      const answer = await next();
      return {
        initiatedAt: Float64Array.from(answer.initiatedAt),
        activatedAt: Float64Array.from(answer.activatedAt),
        rejected: answer.rejected,
      };
    },
    async stop() {
      try {
        await send("stop");
        await next();
        await writer.close();
      } catch {
        child.kill("SIGKILL");
      }
      await child.status;
    },
  };
}

/** A private Mosquitto on its own port and config: loopback only, no persistence. */
async function startMosquitto(binary: string) {
  const dir = await Deno.makeTempDir({ prefix: "flotilla-mosquitto-" });
  const port = freePort();
  const config = [
    `listener ${port} 127.0.0.1`,
    "allow_anonymous true",
    "persistence false",
    // -1 is Mosquitto 2's default (no cap); said here so the config says what this bench relies on.
    "max_connections -1",
    "set_tcp_nodelay true",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
  ].join("\n") + "\n";
  await Deno.writeTextFile(`${dir}/mosquitto.conf`, config);
  const child = new Deno.Command(binary, {
    args: ["-c", `${dir}/mosquitto.conf`],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (Date.now() > until) throw new Error("Mosquitto did not listen within 10 s");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The hard limit on open files of this process (its children inherit it). */
function openFileLimit(): number {
  const limits = Deno.readTextFileSync("/proc/self/limits");
  return Number(/Max open files\s+\d+\s+(\d+)/.exec(limits)?.[1] ?? Infinity);
}

async function api<T>(
  orchestrator: BenchOrchestrator,
  method: string,
  path: string,
  body?: unknown,
) {
  const response = await fetch(`${orchestrator.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${orchestrator.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

async function runOnce(broker: "embedded" | "mosquitto", devices: number, mosquittoBinary: string) {
  const loadBefore = loadAverage();
  const mosquitto = broker === "mosquitto" ? await startMosquitto(mosquittoBinary) : undefined;
  const orchestrator = await startOrchestrator({
    v8Flags: startTaskV8Flags(),
    databaseUrl: Deno.env.get("DATABASE_URL") || undefined,
    mqttUrl: mosquitto?.url,
  });
  const processes: DeviceProcess[] = [];
  try {
    const brokerPid = mosquitto?.pid ?? orchestrator.pid;
    const keys = await loadSimKeys(KEY_DIR, devices);
    for (let from = 0; from < devices; from += REGISTER_BATCH) {
      const batch = [];
      for (let i = from; i < Math.min(devices, from + REGISTER_BATCH); i++) {
        batch.push({
          id: keys.ids[i],
          publicKey: toBase64(keys.publicKeys.subarray(i * 32, i * 32 + 32)),
        });
      }
      await api(orchestrator, "POST", "/v1/devices/batch", { devices: batch, ifExists: "skip" });
    }
    const server = await api<{ serverId: string; publicKey: string; mqtt: { url: string } }>(
      orchestrator,
      "GET",
      "/v1/server",
    );
    const brokerBefore = memory(brokerPid);
    const count = Math.max(navigator.hardwareConcurrency, Math.ceil(devices / 10_000));
    for (let p = 0; p < count; p++) {
      const from = Math.floor((devices * p) / count);
      const to = Math.floor((devices * (p + 1)) / count);
      processes.push(spawnDeviceProcess({
        ids: keys.ids.slice(from, to),
        seeds: toBase64(keys.seeds.subarray(from * 32, to * 32)),
        serverKey: server.publicKey,
        serverId: server.serverId,
        mqttUrl: server.mqtt.url,
        name: `process-${p}`,
      }));
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ready = await Promise.race([
      Promise.all(processes.map((p) => p.ready)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const files = Array.from(Deno.readDirSync(`/proc/${brokerPid}/fd`)).length;
          reject(new Error(`Devices not all connected in 600 s; the broker holds ${files} files`));
        }, CONNECT_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    const connectFrom = Math.min(...ready.map((r) => r.connecting.from));
    const connectTo = Math.max(...ready.map((r) => r.connecting.to));
    const brokerConnected = memory(brokerPid);
    const devicesConnected = processes.map((p) => memory(p.pid));
    console.error(
      `  ${broker}: ${devices} connections in ${((connectTo - connectFrom) / 1000).toFixed(1)} s`,
    );

    // A full rollout over every connection: the 4 stages of bench/connections.yaml.
    const policy = parseYaml(
      await Deno.readTextFile(new URL("./connections.yaml", import.meta.url)),
    );
    const firmware = crypto.getRandomValues(new Uint8Array(4096));
    const upload = await fetch(`${orchestrator.url}/v1/artifacts`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${orchestrator.token}`,
        "content-type": "application/octet-stream",
      },
      body: firmware,
    });
    const { digest } = await upload.json();
    const cpuFrom = { serve: orchestrator.cpuMs(), broker: cpuMs(brokerPid) };
    const rollout = await api<{ id: string }>(orchestrator, "POST", "/v1/rollouts", {
      artifact: { digest },
      policy,
      targets: { ids: keys.ids },
    });
    const rolloutFrom = Date.now();
    let last: { state: string; counts: Record<string, number> };
    for (;;) {
      last = await api(orchestrator, "GET", `/v1/rollouts/${rollout.id}`);
      if (["completed", "halted", "cancelled", "failed", "paused"].includes(last.state)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const rolloutMs = Date.now() - rolloutFrom;
    const cpuTo = { serve: orchestrator.cpuMs(), broker: cpuMs(brokerPid) };
    const results = await Promise.all(processes.map((p) => p.collect()));
    const latencies: number[] = [];
    const rejected: Record<string, number> = {};
    for (const r of results) {
      for (let i = 0; i < r.activatedAt.length; i++) {
        if (r.activatedAt[i]! > 0 && r.initiatedAt[i]! > 0) {
          latencies.push(r.activatedAt[i]! - r.initiatedAt[i]!);
        }
      }
      for (const [reason, n] of Object.entries(r.rejected as Record<string, number>)) {
        rejected[reason] = (rejected[reason] ?? 0) + n;
      }
    }
    latencies.sort((a, b) => a - b);
    const stats = latencyStats(latencies);
    const devicesPeak = processes.map((p) => memory(p.pid).peak);
    const activated = last.counts.activated ?? 0;
    return {
      broker,
      devices,
      connectSeconds: (connectTo - connectFrom) / 1000,
      connectsPerSecond: Math.round(devices / ((connectTo - connectFrom) / 1000)),
      brokerRssBeforeMB: mb(brokerBefore.rss),
      brokerRssConnectedMB: mb(brokerConnected.rss),
      brokerPeakRssMB: mb(memory(brokerPid).peak),
      orchestratorPeakRssMB: mb(orchestrator.memory().peak),
      deviceProcesses: count,
      devicesRssConnectedMB: devicesConnected.reduce((sum, m) => sum + mb(m.rss), 0),
      devicesPeakRssMB: devicesPeak.reduce((sum, bytes) => sum + mb(bytes), 0),
      rolloutState: last.state,
      activated,
      rolloutSeconds: rolloutMs / 1000,
      devicesPerSecond: Math.round(activated / (rolloutMs / 1000)),
      p50Ms: stats.p50,
      p99Ms: stats.p99,
      orchestratorCpuMsPerDevice: Math.round(((cpuTo.serve - cpuFrom.serve) / activated) * 1000) /
        1000,
      brokerCpuMsPerDevice: mosquitto
        ? Math.round(((cpuTo.broker - cpuFrom.broker) / activated) * 1000) / 1000
        : null,
      rejected,
      database: orchestrator.database === "pglite" ? "pglite" : "postgresql",
      loadAverage: { before: loadBefore, after: loadAverage() },
    };
  } finally {
    await Promise.allSettled(processes.map((p) => p.stop()));
    await orchestrator.stop();
    await mosquitto?.stop();
  }
}

async function main(): Promise<void> {
  const asked = Number(Deno.env.get("FLOTILLA_BENCH_CONNECTIONS") ?? 20_000);
  const brokers = (Deno.env.get("FLOTILLA_BENCH_BROKERS") ?? "embedded,mosquitto").split(",");
  const mosquittoBinary = Deno.env.get("MOSQUITTO") ?? "/usr/sbin/mosquitto";
  const limit = openFileLimit();
  // The broker holds one socket per device plus its own files: a broker process cannot hold
  // more connections than its open-file limit, and a process cannot raise its hard limit.
  const devices = Math.min(asked, limit - FD_HEADROOM);
  if (devices < asked) {
    console.error(
      `Open files are capped at ${limit} per process (hard limit, ulimit -Hn): ` +
        `${devices} devices instead of ${asked}`,
    );
  }
  const rows = [];
  for (const broker of brokers) {
    if (broker !== "embedded" && broker !== "mosquitto") {
      throw new RangeError(`Invalid broker "${broker}": expected embedded or mosquitto`);
    }
    if (broker === "mosquitto") {
      try {
        await Deno.stat(mosquittoBinary);
      } catch {
        console.error(`Mosquitto skipped: no binary at "${mosquittoBinary}" (set MOSQUITTO)`);
        continue;
      }
    }
    const row = {
      askedDevices: asked,
      openFileLimit: limit,
      ...await runOnce(broker, devices, mosquittoBinary),
    };
    console.log(JSON.stringify(row));
    rows.push(row);
  }
  await Deno.mkdir(new URL("./out", import.meta.url), { recursive: true });
  await Deno.writeTextFile(
    new URL("./out/connections.json", import.meta.url),
    JSON.stringify({ at: new Date().toISOString(), rows }, null, 2) + "\n",
  );
  console.table(rows.map(({ rejected: _, loadAverage, ...row }) => ({
    ...row,
    load: loadAverage.before.join(" "),
  })));
}
