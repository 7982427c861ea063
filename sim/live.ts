/**
 * The live simulation: an orchestrator (in-process or running), real device agents spread over
 * Deno workers on real MQTT, fetching the artifact over real HTTP, driven to the rollout's end.
 */
import { join } from "node:path";
import { toBase64 } from "../srup/mod.ts";
import type { FaultMix, LatencyRange } from "./faults.ts";
import type { FleetOptions, FleetResults } from "./fleet.ts";
import { loadSimKeys } from "./keys.ts";
import { isFinal } from "../actors/mod.ts";
import {
  apiCall,
  connectTarget,
  type RolloutJson,
  type SimTarget,
  type StartLocalTarget,
} from "./live_api.ts";
import { mulberry32 } from "./random.ts";
import { type LiveSample, type LiveSummary, summarizeLive } from "./live_summary.ts";
import type { WorkerRequest } from "./worker.ts";

/** Options of {@linkcode runLive}. */
export interface LiveOptions {
  /** The policy object (as parsed from its YAML file), sent inline with the rollout. */
  policy: Record<string, unknown>;
  devices: number;
  seed: number;
  faults: FaultMix;
  latency?: LatencyRange;
  /** Fraction of devices offline from the start, and for how long (default 30 s). */
  offline?: number;
  offlineMs?: number;
  /** Fraction of devices that crash mid-update, and their restart delay (default 2 s). */
  crash?: number;
  restartMs?: number;
  /** One connection per worker; default true above 5,000 devices. */
  gateway?: boolean;
  /** Default: one per core. */
  workers?: number;
  autoPromote?: boolean;
  /** A running orchestrator; unset starts one in-process with `startLocal`. */
  api?: { url: string; token: string };
  /** Starts an orchestrator in this process (the composition root's `startSimTarget`). */
  startLocal?: StartLocalTarget;
  /** In-process: policy time runs this many times faster. */
  speed?: number;
  /** Where device keys are cached; default `$FLOTILLA_DATA_DIR/sim-keys` or `.sim-cache/sim-keys`. */
  keyDir?: string;
  env?: Record<string, string | undefined>;
  /** Artifact size in bytes (default 4 KiB). */
  artifactBytes?: number;
  /** Called on every poll of the rollout (about 4 times a second). */
  onProgress?: (sample: LiveSample, summary: { devices: number; stages: number }) => void;
  /** Called with a line about each setup step. */
  onStep?: (line: string) => void;
}

/** Connection mode switch: one connection per device is the default up to this many devices. */
export const GATEWAY_ABOVE = 5_000;
const REGISTER_CONCURRENCY = 2;
// Devices per bulk registration: well under the route's 10,000 and the JSON body cap.
const REGISTER_BATCH = 5000;
const POLL_MS = 250;

/** Runs a live simulation to the rollout's end; the summary comes from the API and the devices. */
export async function runLive(options: LiveOptions): Promise<LiveSummary> {
  const env = options.env ?? Deno.env.toObject();
  const step = options.onStep ?? (() => {});
  const started = performance.now();
  const tempDir = env.FLOTILLA_DATA_DIR || options.api
    ? undefined
    : await Deno.makeTempDir({ prefix: "flotilla-sim-" });
  const keyDir = options.keyDir ??
    (env.FLOTILLA_DATA_DIR ? join(env.FLOTILLA_DATA_DIR, "sim-keys") : ".sim-cache/sim-keys");
  let target: SimTarget | undefined;
  let workers: FleetWorker[] = [];
  try {
    const keys = await loadSimKeys(keyDir, options.devices);
    step(`keys: ${options.devices} (${keys.generated} new) in ${keyDir}`);
    target = await connectTarget({
      api: options.api,
      startLocal: options.startLocal,
      env,
      speed: options.speed,
      dataDir: tempDir ?? "",
    });
    const call = <T>(method: string, path: string, body?: unknown, accept?: number[]) =>
      apiCall<T>(target!.apiUrl, target!.token, method, path, body, accept);
    step(`orchestrator: ${target.apiUrl}, broker ${target.mqttUrl}`);

    let t = performance.now();
    // Batches of the bulk route; devices registered by an earlier run are skipped.
    const batches = Math.ceil(keys.ids.length / REGISTER_BATCH);
    await pool(batches, REGISTER_CONCURRENCY, async (b) => {
      const devices = [];
      for (
        let i = b * REGISTER_BATCH;
        i < Math.min(keys.ids.length, (b + 1) * REGISTER_BATCH);
        i++
      ) {
        devices.push({
          id: keys.ids[i],
          publicKey: toBase64(keys.publicKeys.subarray(i * 32, i * 32 + 32)),
          tags: { sim: "live" },
        });
      }
      await call("POST", "/v1/devices/batch", { devices, ifExists: "skip" }, [201]);
    });
    const registerMs = performance.now() - t;
    step(`registered ${keys.ids.length} devices in ${(registerMs / 1000).toFixed(1)} s`);

    t = performance.now();
    const gateway = options.gateway ?? options.devices > GATEWAY_ABOVE;
    const count = Math.max(1, Math.min(options.workers ?? navigator.hardwareConcurrency, 64));
    workers = await startWorkers(count, (w, from, to) => ({
      ids: keys.ids.slice(from, to),
      seeds: keys.seeds.slice(from * 32, to * 32),
      serverKey: target!.serverKey,
      serverId: target!.serverId,
      mqttUrl: target!.mqttUrl,
      gateway,
      faults: options.faults,
      latency: options.latency ?? null,
      offline: options.offline ?? 0,
      offlineMs: options.offlineMs ?? 30_000,
      crash: options.crash ?? 0,
      restartMs: options.restartMs ?? 2_000,
      seed: options.seed,
      name: `worker-${w}`,
    }), keys.ids.length);
    const connectMs = performance.now() - t;
    step(
      `${count} workers connected ${options.devices} devices ` +
        `(${gateway ? "gateway mode" : "one connection each"}) in ${
          (connectMs / 1000).toFixed(1)
        } s`,
    );

    const firmware = new Uint8Array(options.artifactBytes ?? 4096);
    const random = mulberry32(options.seed);
    for (let i = 0; i < firmware.length; i++) firmware[i] = Math.floor(random() * 256);
    const artifact = await uploadArtifact(target, firmware);
    const rollout = await call<{ id: string }>("POST", "/v1/rollouts", {
      artifact: { digest: artifact },
      policy: options.policy,
      targets: { ids: keys.ids },
    });
    const rolloutStarted = Date.now();
    step(`rollout ${rollout.id} created`);

    const samples: LiveSample[] = [];
    let last: RolloutJson;
    let promotedStage = -1;
    const rss = new RssPeak();
    for (;;) {
      last = await call<RolloutJson>("GET", `/v1/rollouts/${rollout.id}`);
      rss.sample();
      const sample: LiveSample = {
        t: Date.now() - rolloutStarted,
        state: last.state,
        stage: last.stage,
        counts: last.counts,
      };
      samples.push(sample);
      options.onProgress?.(sample, { devices: last.devices, stages: last.stages?.length ?? 0 });
      if (isFinal(last.state) || last.state === "paused") break;
      if (last.state === "waiting_approval") {
        if (options.autoPromote === false) break;
        if (promotedStage !== last.stage) {
          promotedStage = last.stage;
          await call("POST", `/v1/rollouts/${rollout.id}/promote`, {}, [200, 201, 202, 409]);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    const rolloutMs = Date.now() - rolloutStarted;
    const results = await Promise.all(workers.map((w) => w.collect()));
    return summarizeLive({
      rollout: last,
      seed: options.seed,
      samples,
      fleets: results,
      mode: gateway ? "gateway" : "device",
      workers: count,
      inProcess: target.close !== undefined,
      rssPeakBytes: rss.peak,
      rolloutStartedAt: rolloutStarted,
      timings: { registerMs, connectMs, rolloutMs, wallMs: performance.now() - started },
    });
  } finally {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await target?.close?.();
    if (tempDir) await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  }
}

async function uploadArtifact(target: SimTarget, bytes: Uint8Array): Promise<string> {
  const response = await fetch(`${target.apiUrl}/v1/artifacts`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${target.token}`,
      "content-type": "application/octet-stream",
    },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  const text = await response.text();
  if (response.status !== 201 && response.status !== 200) {
    throw new Error(`Cannot upload the artifact: ${response.status} ${text.slice(0, 300)}`);
  }
  return JSON.parse(text).digest;
}

/** Peak resident set size of this process, from /proc where it exists. */
class RssPeak {
  peak = 0;
  sample(): void {
    this.peak = Math.max(this.peak, Deno.memoryUsage().rss);
  }
}

async function pool(count: number, width: number, run: (index: number) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, count) }, async () => {
    while (next < count) await run(next++);
  }));
}

interface FleetWorker {
  collect(): Promise<FleetResults>;
  stop(): Promise<void>;
}

async function startWorkers(
  count: number,
  optionsFor: (worker: number, from: number, to: number) => FleetOptions,
  devices: number,
): Promise<FleetWorker[]> {
  const started: FleetWorker[] = [];
  const ready: Promise<void>[] = [];
  for (let w = 0; w < count; w++) {
    const from = Math.floor((devices * w) / count);
    const to = Math.floor((devices * (w + 1)) / count);
    const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    const waiting = new Map<string, (data: Record<string, unknown>) => void>();
    let failed: (error: Error) => void = () => {};
    const failure = new Promise<never>((_, reject) => (failed = reject));
    failure.catch(() => {});
    worker.onmessage = (event: MessageEvent<Record<string, unknown>>) => {
      if (event.data.type === "error") failed(new Error(`Worker ${w}: ${event.data.message}`));
      waiting.get(event.data.type as string)?.(event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      failed(new Error(`Worker ${w}: ${event.message}`));
    };
    const ask = (request: WorkerRequest, answer: string) => {
      const { promise, resolve } = Promise.withResolvers<Record<string, unknown>>();
      waiting.set(answer, resolve);
      worker.postMessage(request);
      return Promise.race([promise, failure]);
    };
    let stopped = false;
    started.push({
      collect: async () => (await ask({ type: "collect" }, "results")).results as FleetResults,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        const timer = setTimeout(() => worker.terminate(), 5_000);
        try {
          await ask({ type: "stop" }, "stopped");
        } finally {
          clearTimeout(timer);
          worker.terminate();
        }
      },
    });
    ready.push(ask({ type: "start", options: optionsFor(w, from, to) }, "ready").then(() => {}));
  }
  try {
    await Promise.all(ready);
  } catch (error) {
    await Promise.allSettled(started.map((w) => w.stop()));
    throw error;
  }
  return started;
}
