/** `flotilla sim`: simulate a rollout over many devices. */
import { formatIssue, loadPolicyResult, parseDuration } from "../policies/mod.ts";
import { formatSummary, parseFaults, parseLatency, runVirtual } from "../sim/mod.ts";
import { parse, printJson, UsageError } from "./args.ts";

export const HELP = `Usage: flotilla sim --virtual --policy FILE [options]

Runs the real rollout engine against in-memory virtual devices on a simulated clock.

Options:
  --virtual            Simulate in simulated time (required for now: live simulation is issue 6)
  --policy FILE        The policy file to roll out with
  --devices N          Number of virtual devices (default 1000)
  --seed S             Seed; the same seed gives the same run (default 1)
  --fail MIX           Fault probabilities per attempt, e.g. fc=0.01,fd=0.02,fe=0.01,ff=0,timeout=0.01
  --latency A..B       Answer delay range (default 200ms..5s)
  --cancel-after D     Cancel the rollout after simulated duration D (e.g. 2h)
  --no-auto-promote    Leave manual approvals waiting (the run ends "waiting_approval")
  --json               Print the summary as JSON`;

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
    json: { type: "boolean" },
    help: { type: "boolean" },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.virtual) {
    console.error(
      "Live simulation over MQTT is not built yet (issue 6): use --virtual to simulate in simulated time",
    );
    return 2;
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
  const loaded = await loadPolicyResult(values.policy);
  if (!loaded.ok) {
    for (const issue of loaded.issues) console.error(formatIssue(issue));
    return 1;
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
  });
  if (values.json) printJson(summary);
  else console.log(formatSummary(summary));
  return 0;
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
