/** `flotilla sim`: simulate a rollout over many devices. */
import { parse as parseYaml } from "yaml";
import { formatIssue, loadPolicyResult, parseDuration } from "../policies/mod.ts";
import {
  formatLiveSummary,
  formatSummary,
  parseFaults,
  parseLatency,
  progressJson,
  runLive,
  runVirtual,
  TerminalProgress,
  writeReport,
} from "../sim/mod.ts";
import { type LiveOptions, NO_FAULTS } from "../sim/mod.ts";
import { answer, apiTarget } from "./api.ts";
import { parse, printJson, UsageError } from "./args.ts";
import { startSimTarget } from "../app/mod.ts";

export const HELP = `Usage: flotilla sim --policy FILE [options]

Live (the default): starts the orchestrator in-process on ephemeral ports (or uses --api), runs
real device agents over real MQTT in workers, and drives a rollout to its end.
Virtual (--virtual): the real rollout engine against in-memory devices on a simulated clock.

Options:
  --virtual            Simulate in simulated time instead
  --policy FILE        The policy file to roll out with
  --devices N          Number of virtual devices (default 1000)
  --seed S             Seed; the same seed gives the same run (default 1)
  --fail MIX           Fault probabilities per attempt, e.g. fc=0.01,fd=0.02,fe=0.01,ff=0,timeout=0.01
  --latency A..B       Answer delay range (default 200ms..5s)
  --cancel-after D     Cancel the rollout after simulated duration D (e.g. 2h)
  --no-auto-promote    Leave manual approvals waiting (the run ends "waiting_approval")
  --start TIME         Virtual: the simulated clock's start, ISO 8601 (default 1970-01-01T00:00Z);
                       with maintenance windows the date and hour matter
  --tag-values LIST    Virtual, windows by tag: the values dealt to the devices in turn, e.g.
                       berlin,new-york,tokyo (default the policy's windows.groups names)
  --json               Print the summary as JSON (live: also JSON progress lines)

Live options:
  --api URL            Use a running orchestrator instead of starting one (needs --token)
  --token T            API token of an operator or admin, for --api
  --speed N            Policy time runs N times faster (in-process only; default 1)
  --offline F[:D]      Fraction F of devices miss every frame for D from the start (default 30s)
  --crash F[:D]        Fraction F of devices crash mid-download, restart after D (default 2s)
  --gateway | --per-device   Connection mode (default: per device up to 5000 devices)
  --workers N          Device workers (default: one per core)
  --report DIR         Write report.json and report.html into DIR

Live runs honour FLOTILLA_DATA_DIR (data and the device key cache) and MQTT_URL.`;

const MAX_DEVICES = 50_000_000;

/** Runs `sim` with its arguments; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    virtual: { type: "boolean" },
    policy: { type: "string" },
    devices: { type: "string" },
    seed: { type: "string" },
    fail: { type: "string" },
    latency: { type: "string" },
    "cancel-after": { type: "string" },
    "no-auto-promote": { type: "boolean" },
    start: { type: "string" },
    "tag-values": { type: "string" },
    json: { type: "boolean" },
    api: { type: "string" },
    token: { type: "string" },
    speed: { type: "string" },
    offline: { type: "string" },
    crash: { type: "string" },
    gateway: { type: "boolean" },
    "per-device": { type: "boolean" },
    workers: { type: "string" },
    report: { type: "string" },
    help: { type: "boolean" },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.policy) throw new UsageError("sim needs --policy FILE");
  const devices = integer("--devices", values.devices ?? "1000", 0, MAX_DEVICES);
  const seed = integer("--seed", values.seed ?? "1", 0, Number.MAX_SAFE_INTEGER);
  const faults = option(
    "--fail",
    () => values.fail === undefined ? undefined : parseFaults(values.fail),
  );
  const latency = option("--latency", () => parseLatency(values.latency ?? "200ms..5s"));
  const cancelAfter = option("--cancel-after", () => {
    const text = values["cancel-after"];
    return text === undefined ? undefined : parseDuration(text);
  });
  const start = values.start === undefined ? undefined : Date.parse(values.start);
  if (start !== undefined && !Number.isFinite(start)) {
    throw new UsageError(
      `Invalid --start "${values.start}": expected ISO 8601, as 2026-03-28T00:00Z`,
    );
  }
  const tagValues = values["tag-values"]?.split(",").map((value) => value.trim());
  if (tagValues?.some((value) => value === "")) {
    throw new UsageError(`Invalid --tag-values "${values["tag-values"]}": expected a,b,c`);
  }
  const loaded = await loadPolicyResult(values.policy);
  if (!loaded.ok) {
    for (const issue of loaded.issues) console.error(formatIssue(issue));
    return 1;
  }
  if (!values.virtual) {
    return await live(values, {
      policy: parseYaml(await Deno.readTextFile(values.policy)),
      devices,
      seed,
      faults: faults ?? NO_FAULTS,
      latency: values.latency === undefined ? undefined : latency,
      autoPromote: !values["no-auto-promote"],
    });
  }
  const summary = runVirtual({
    policy: loaded.loaded.policy,
    provenance: loaded.loaded.provenance,
    devices,
    seed,
    faults,
    latency,
    cancelAfter,
    autoPromote: !values["no-auto-promote"],
    start,
    tagValues,
  });
  if (values.json) printJson(summary);
  else console.log(formatSummary(summary));
  return 0;
}

type Values = Record<string, string | boolean | undefined>;

async function live(
  values: Values,
  base: Pick<LiveOptions, "policy" | "devices" | "seed" | "faults" | "latency" | "autoPromote">,
): Promise<number> {
  const text = (name: string) => values[name] as string | undefined;
  if ((text("api") === undefined) !== (text("token") === undefined)) {
    throw new UsageError("--api and --token go together");
  }
  if (values.gateway && values["per-device"]) {
    throw new UsageError("Choose one of --gateway and --per-device");
  }
  const api = text("api");
  if (api !== undefined) {
    // Check the URL and token before making device keys, which can take a while.
    const target = apiTarget(api, text("token")!, "--api");
    await answer(target, target.client.v1.server.$get());
  }
  const offline = fraction("--offline", text("offline"), "30s");
  const crash = fraction("--crash", text("crash"), "2s");
  const json = values.json === true;
  const terminal = !json && Deno.stdout.isTerminal()
    ? new TerminalProgress((s) => Deno.stdout.writeSync(new TextEncoder().encode(s)))
    : undefined;
  const summary = await runLive({
    ...base,
    api: text("api") ? { url: text("api")!, token: text("token")! } : undefined,
    startLocal: startSimTarget,
    speed: text("speed") === undefined ? undefined : integer("--speed", text("speed")!, 1, 100_000),
    offline: offline?.fraction,
    offlineMs: offline?.ms,
    crash: crash?.fraction,
    restartMs: crash?.ms,
    gateway: values.gateway ? true : values["per-device"] ? false : undefined,
    workers: text("workers") === undefined
      ? undefined
      : integer("--workers", text("workers")!, 1, 64),
    onStep: (line) => json ? printJson({ type: "step", message: line }) : console.error(line),
    onProgress(sample, info) {
      if (json) printJson(progressJson(sample, info));
      else terminal?.draw(sample, info);
    },
  });
  terminal?.finish();
  if (text("report")) await writeReport(text("report")!, summary);
  if (json) printJson({ type: "summary", ...summary, timeline: undefined, latencies: undefined });
  else console.log(formatLiveSummary(summary));
  return summary.state === "completed" ? 0 : 1;
}

function fraction(flag: string, value: string | undefined, defaultDelay: string) {
  if (value === undefined) return undefined;
  const [share, delay] = value.split(":");
  const f = Number(share);
  if (share === undefined || share.trim() === "" || !(f >= 0 && f <= 1)) {
    throw new UsageError(
      `Invalid ${flag} "${value}": expected a fraction from 0 to 1, as 0.05:30s`,
    );
  }
  return { fraction: f, ms: option(flag, () => parseDuration(delay ?? defaultDelay)) };
}

function integer(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(
      `Invalid ${flag} "${text}": expected a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

function option<T>(flag: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new UsageError(`Invalid ${flag}: ${error.message}`);
  }
}
