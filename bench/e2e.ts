/**
 * End-to-end benchmark: full 4-stage rollouts (bench/e2e.yaml, no bake) over 1k, 10k and 100k live
 * simulated devices, with the orchestrator (`main.ts serve`) in its own process so its CPU time and
 * peak RSS (VmHWM) are its own, and devices in workers of this process. Also times the crypto
 * ceiling (the Ed25519 work one device costs both sides, raw, on every core) and the server's own
 * Ed25519 work per device on its code path. Sizes: FLOTILLA_BENCH_E2E=1000,10000. With
 * DATABASE_URL (a PostgreSQL server) each size runs on a fresh database there instead of PGlite.
 * The orchestrator gets the V8 flags `deno task start` gives it, or FLOTILLA_BENCH_SERVE_V8_FLAGS
 * instead (empty for V8's defaults); the device workers in this process keep V8's defaults.
 * FLOTILLA_BENCH_SERVE_CPU_PROF=DIR writes the orchestrator's CPU profile there (bench/cpu_profile.ts
 * summarises it).
 */
import { parse as parseYaml } from "yaml";
import {
  ACTIVATE_SUCCESS,
  newToken,
  randomPrivateKey,
  signMessage,
  UPDATE_SUCCESS,
  verifyMessage,
} from "../srup/mod.ts";
import { defaultEd25519, type SrupMessage } from "../srup/mod.ts";
import { loadSimKeys, NO_FAULTS, runLive } from "../sim/mod.ts";
import { type BenchOrchestrator, startOrchestrator, startTaskV8Flags } from "./orchestrator.ts";
import { cpuMs, loadAverage, mb } from "./proc.ts";

const sizes = (Deno.env.get("FLOTILLA_BENCH_E2E") ?? "1000,10000,100000").split(",").map(Number);
const policy = parseYaml(await Deno.readTextFile(new URL("./e2e.yaml", import.meta.url)));
const cores = navigator.hardwareConcurrency;
const serveV8Flags = Deno.env.get("FLOTILLA_BENCH_SERVE_V8_FLAGS") ?? startTaskV8Flags();
const databaseUrl = Deno.env.get("DATABASE_URL") || undefined;
const KEY_DIR = ".sim-cache/sim-keys";

/** Devices per second the Ed25519 work alone allows: 4 signs and 4 verifies per device. */
async function cryptoCeiling(): Promise<
  { msPerDevice: number; devicesPerSecond: number; cpuMsPerDevice: number }
> {
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
  const cpu = cpuMs("self");
  const started = performance.now();
  for (let i = 0; i < n; i++) await oneDevice();
  const msPerDevice = (performance.now() - started) / n;
  // CPU time too: on a loaded machine the wall time counts other processes' turns.
  const cpuMsPerDevice = (cpuMs("self") - cpu) / n;
  return {
    msPerDevice,
    devicesPerSecond: Math.round((1000 / msPerDevice) * cores),
    cpuMsPerDevice,
  };
}

/** One device as the server's side of the Ed25519 benchmark sees it. */
interface ServedDevice {
  token: Uint8Array;
  target: Uint8Array;
  publicKey: Uint8Array;
  /** Its RESPONSE 0x00 and 0x10, signed. */
  received: SrupMessage;
  activated: SrupMessage;
}

/**
 * The server's own Ed25519 work per device, on its code path (signMessage and verifyMessage with
 * their key caches): sign INITIATE, verify RESPONSE 0x00, sign ACTIVATE, verify RESPONSE 0x10.
 * Devices take turns over more keys than the 16,384-key cache holds, so each device's public key
 * is imported once, as at fleet scale. The devices' signatures are made beforehand, untimed.
 */
async function serverEd25519(): Promise<{ msPerDevice: number; cpuMsPerDevice: number }> {
  const warm = 2_000;
  const timed = 18_000;
  const keys = await loadSimKeys(KEY_DIR, warm + timed);
  const serverKey = randomPrivateKey();
  const digest = crypto.getRandomValues(new Uint8Array(32));
  const url = "http://127.0.0.1:8080/v1/artifacts/" + "ab".repeat(32) + "/content";
  const devices: ServedDevice[] = [];
  for (let i = 0; i < warm + timed; i++) {
    const seed = keys.seeds.subarray(i * 32, i * 32 + 32);
    const token = newToken();
    const reply = (sequence: bigint, status: number) =>
      signMessage(
        { type: "response", version: 2, sequence, token, status, signature: new Uint8Array() },
        seed,
      );
    devices.push({
      token,
      target: crypto.getRandomValues(new Uint8Array(16)),
      publicKey: keys.publicKeys.slice(i * 32, i * 32 + 32),
      received: await reply(1n, UPDATE_SUCCESS),
      activated: await reply(2n, ACTIVATE_SUCCESS),
    });
  }
  async function serve(device: ServedDevice, sequence: bigint) {
    const { token } = device;
    await signMessage({
      type: "initiate",
      version: 2,
      sequence,
      target: device.target,
      token,
      url,
      digest,
      signature: new Uint8Array(),
    }, serverKey);
    if (!await verifyMessage(device.received, device.publicKey)) throw new Error("Verify failed");
    await signMessage(
      { type: "activate", version: 2, sequence: sequence + 1n, token, signature: new Uint8Array() },
      serverKey,
    );
    if (!await verifyMessage(device.activated, device.publicKey)) throw new Error("Verify failed");
  }
  // The last devices first, so the timed ones start outside the key cache.
  for (let i = warm + timed - 1; i >= timed; i--) await serve(devices[i]!, 1n);
  const cpu = cpuMs("self");
  const started = performance.now();
  for (let i = 0; i < timed; i++) await serve(devices[i]!, 1n);
  return {
    msPerDevice: (performance.now() - started) / timed,
    cpuMsPerDevice: (cpuMs("self") - cpu) / timed,
  };
}

/** Sums what `after` adds to `before`, backend by backend (a backend new since counts whole). */
function cpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

const ceiling = await cryptoCeiling();
console.log(
  `crypto ceiling: ${ceiling.msPerDevice.toFixed(3)} ms of Ed25519 per device on one core ` +
    `(4 signs, 4 verifies), ${ceiling.devicesPerSecond} devices/s on ${cores} cores ` +
    `(${ceiling.cpuMsPerDevice.toFixed(3)} ms of CPU per device)`,
);
const server = await serverEd25519();
console.log(
  `server's own Ed25519 work: ${server.cpuMsPerDevice.toFixed(3)} ms of CPU per device ` +
    `(${server.msPerDevice.toFixed(3)} ms of wall time; 2 signs, 2 verifies, 1 key import)`,
);
const rows = [];
for (const devices of sizes) {
  const loadBefore = loadAverage();
  let orchestrator: BenchOrchestrator | undefined;
  try {
    orchestrator = await startOrchestrator({
      v8Flags: serveV8Flags,
      databaseUrl,
      cpuProfileDir: Deno.env.get("FLOTILLA_BENCH_SERVE_CPU_PROF") || undefined,
    });
    const serve = orchestrator;
    // CPU is counted from the devices being connected (before the rollout is created) to the
    // rollout's last poll: registration and connecting are left out, as from the rollout time.
    let from = { serve: 0, devices: 0 };
    let to = { serve: 0, devices: 0 };
    let databaseFrom = Promise.resolve(new Map<number, number>());
    const summary = await runLive({
      policy,
      devices,
      seed: 1,
      faults: NO_FAULTS,
      keyDir: KEY_DIR,
      api: { url: serve.url, token: serve.token },
      onStep(line) {
        console.error(`  ${devices}: ${line}`);
        if (/ workers connected /.test(line)) {
          from = { serve: serve.cpuMs(), devices: cpuMs("self") };
          databaseFrom = serve.databaseCpuMs();
        }
      },
      onProgress() {
        to = { serve: serve.cpuMs(), devices: cpuMs("self") };
      },
    });
    const databaseMs = cpuSince(await databaseFrom, await serve.databaseCpuMs());
    const memory = serve.memory();
    const activated = Math.max(1, summary.activated);
    const serveMsPerDevice = (to.serve - from.serve) / activated;
    const row = {
      devices,
      database: databaseUrl ? "postgresql" : "pglite",
      state: summary.state,
      activated: summary.activated,
      rolloutSeconds: summary.rolloutSeconds,
      devicesPerSecond: summary.devicesPerSecond,
      p50Ms: summary.latencyMs.p50,
      p99Ms: summary.latencyMs.p99,
      orchestratorPeakRssMB: mb(memory.peak),
      orchestratorRssAtEndMB: mb(memory.rss),
      ratioToCeiling: round(summary.devicesPerSecond / ceiling.devicesPerSecond),
      // The ceiling from CPU time rather than wall time: steadier when other processes share the
      // cores, as the rollout's wall time is not.
      ratioToCpuCeiling: round(
        summary.devicesPerSecond / ((1000 / ceiling.cpuMsPerDevice) * cores),
      ),
      orchestratorCpuMsPerDevice: round(serveMsPerDevice),
      serverEd25519CpuMsPerDevice: round(server.cpuMsPerDevice),
      orchestratorCpuOverEd25519: round(serveMsPerDevice / server.cpuMsPerDevice, 2),
      devicesCpuMsPerDevice: round((to.devices - from.devices) / activated),
      databaseCpuMsPerDevice: databaseUrl ? round(databaseMs / activated) : null,
      registerSeconds: summary.registerSeconds,
      connectSeconds: summary.connectSeconds,
      connection: summary.connection,
      serveV8Flags,
      loadAverage: { before: loadBefore, after: loadAverage() },
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  } catch (error) {
    // A refused size (a rollout that does not fit, say) is a row too: what the API answered.
    const row = {
      devices,
      database: databaseUrl ? "postgresql" : "pglite",
      state: "error",
      error: (error as Error).message,
      orchestratorPeakRssMB: orchestrator ? mb(orchestrator.memory().peak) : null,
      serveV8Flags,
      loadAverage: { before: loadBefore, after: loadAverage() },
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    await orchestrator?.stop();
  }
}
await Deno.mkdir(new URL("./out", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./out/e2e.json", import.meta.url),
  JSON.stringify({ at: new Date().toISOString(), cores, ceiling, server, rows }, null, 2) + "\n",
);
console.table(rows.map(({ loadAverage, serveV8Flags: _, ...row }) => ({
  ...row,
  load: loadAverage.before.join(" "),
})));
