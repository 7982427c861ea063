/**
 * End-to-end benchmark: full 4-stage rollouts (bench/e2e.yaml, no bake) over 1k, 10k and 100k live
 * simulated devices, with the orchestrator (`main.ts serve`) in its own process so its peak RSS
 * (VmHWM) is its own, and devices in workers of this process. Also times the crypto ceiling: the
 * Ed25519 work one device costs both sides, raw, on every core. Sizes: FLOTILLA_BENCH_E2E=1000,10000.
 * The orchestrator gets the V8 flags `deno task start` gives it, or FLOTILLA_BENCH_SERVE_V8_FLAGS
 * instead (empty for V8's defaults); the device workers in this process keep V8's defaults.
 */
import { parse as parseYaml } from "yaml";
import { newToken, randomPrivateKey, signMessage, verifyMessage } from "../srup/mod.ts";
import { defaultEd25519, type SrupMessage } from "../srup/mod.ts";
import { NO_FAULTS, runLive } from "../sim/mod.ts";

const sizes = (Deno.env.get("FLOTILLA_BENCH_E2E") ?? "1000,10000,100000").split(",").map(Number);
const policy = parseYaml(await Deno.readTextFile(new URL("./e2e.yaml", import.meta.url)));
const cores = navigator.hardwareConcurrency;
const serveV8Flags = Deno.env.get("FLOTILLA_BENCH_SERVE_V8_FLAGS") ?? startTaskV8Flags();

/** The `--v8-flags` value of deno.json's start task, so the benchmark runs what operators run. */
function startTaskV8Flags(): string {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  const flag = (config.tasks.start as string).split(/\s+/).find((arg) =>
    arg.startsWith("--v8-flags=")
  );
  return flag?.slice("--v8-flags=".length) ?? "";
}

/** Devices per second the Ed25519 work alone allows: 4 signs and 4 verifies per device. */
async function cryptoCeiling(): Promise<{ msPerDevice: number; devicesPerSecond: number }> {
  const serverKey = randomPrivateKey();
  const deviceKey = randomPrivateKey();
  const ed = await defaultEd25519();
  const serverPublic = await ed.getPublicKey(serverKey);
  const devicePublic = await ed.getPublicKey(deviceKey);
  const token = newToken();
  const unsigned: SrupMessage[] = [
    {
      type: "initiate",
      version: 2,
      sequence: 1n,
      target: crypto.getRandomValues(new Uint8Array(16)),
      token,
      url: "http://127.0.0.1:8080/artifacts/" + "ab".repeat(32),
      digest: new Uint8Array(32),
      signature: new Uint8Array(),
    },
    { type: "activate", version: 2, sequence: 2n, token, signature: new Uint8Array() },
  ];
  const response: SrupMessage = {
    type: "response",
    version: 2,
    sequence: 1n,
    token,
    status: 0,
    signature: new Uint8Array(),
  };
  async function oneDevice() {
    for (const message of unsigned) {
      const signed = await signMessage(message, serverKey);
      if (!await verifyMessage(signed, serverPublic)) throw new Error("verify failed");
      const reply = await signMessage(response, deviceKey);
      if (!await verifyMessage(reply, devicePublic)) throw new Error("verify failed");
    }
  }
  for (let i = 0; i < 200; i++) await oneDevice();
  const n = 2000;
  const started = performance.now();
  for (let i = 0; i < n; i++) await oneDevice();
  const msPerDevice = (performance.now() - started) / n;
  return { msPerDevice, devicesPerSecond: Math.round((1000 / msPerDevice) * cores) };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function startOrchestrator() {
  const dataDir = await Deno.makeTempDir({ prefix: "flotilla-bench-" });
  const token = `bench-${crypto.randomUUID()}`;
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      ...(serveV8Flags ? [`--v8-flags=${serveV8Flags}`] : []),
      new URL("../main.ts", import.meta.url).pathname,
      "serve",
    ],
    env: {
      FLOTILLA_DATA_DIR: dataDir,
      FLOTILLA_ADMIN_TOKEN: token,
      PORT: String(port),
      FLOTILLA_MQTT_PORT: String(freePort()),
    },
    stdout: "null",
    // Kept, so a run that dies says why (bench/out/serve-<n>.log).
    stderr: "piped",
  }).spawn();
  await Deno.mkdir(new URL("./out/", import.meta.url), { recursive: true });
  const log = await Deno.open(new URL(`./out/serve-${port}.log`, import.meta.url), {
    write: true,
    create: true,
    truncate: true,
  });
  child.stderr.pipeTo(log.writable).catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      const response = await fetch(`${url}/v1/server`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > until) throw new Error("The orchestrator did not start within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    url,
    token,
    /** Peak resident set size of the orchestrator process, in bytes. */
    async peakRss(): Promise<number> {
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone: its status and log say how.
      }
      const status = await child.status;
      if (status.code !== 0) {
        console.error(`orchestrator exited with ${status.code} (log: bench/out/serve-${port}.log)`);
      }
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

const ceiling = await cryptoCeiling();
console.log(
  `crypto ceiling: ${ceiling.msPerDevice.toFixed(3)} ms of Ed25519 per device on one core ` +
    `(4 signs, 4 verifies), ${ceiling.devicesPerSecond} devices/s on ${cores} cores`,
);
const rows = [];
for (const devices of sizes) {
  const orchestrator = await startOrchestrator();
  try {
    const summary = await runLive({
      policy,
      devices,
      seed: 1,
      faults: NO_FAULTS,
      api: { url: orchestrator.url, token: orchestrator.token },
      onStep: (line) => console.error(`  ${devices}: ${line}`),
    });
    const rss = await orchestrator.peakRss();
    const row = {
      devices,
      state: summary.state,
      activated: summary.activated,
      rolloutSeconds: summary.rolloutSeconds,
      devicesPerSecond: summary.devicesPerSecond,
      p50Ms: summary.latencyMs.p50,
      p99Ms: summary.latencyMs.p99,
      orchestratorPeakRssMB: Math.round(rss / 1024 / 1024),
      ratioToCeiling: Math.round((summary.devicesPerSecond / ceiling.devicesPerSecond) * 1000) /
        1000,
      registerSeconds: summary.registerSeconds,
      connectSeconds: summary.connectSeconds,
      connection: summary.connection,
      serveV8Flags,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    await orchestrator.stop();
  }
}
await Deno.mkdir(new URL("./out", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./out/e2e.json", import.meta.url),
  JSON.stringify({ at: new Date().toISOString(), cores, ceiling, rows }, null, 2) + "\n",
);
console.table(rows);
