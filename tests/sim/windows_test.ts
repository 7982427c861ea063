import assert from "node:assert/strict";
import { loadPolicyFile } from "../../policies/mod.ts";
import { parseFaults, runVirtual } from "../../sim/mod.ts";

const NIGHT = new URL("../../policies/night-windows.yaml", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

// The same run over 100,000 devices, with its one-minute target, is bench/windows_100k.ts: in the
// parallel suite on a loaded machine a wall-time bound would be noise, so the suite runs 20,000.
Deno.test("sim --virtual: 20,000 devices in three time zones, nightly windows over days, none outside", async () => {
  const { policy, provenance } = await loadPolicyFile(NIGHT);
  // Starts on Friday 2026-03-27: Berlin springs forward on the Sunday, mid-rollout.
  const summary = runVirtual({
    policy,
    provenance,
    devices: 20_000,
    seed: 7,
    start: Date.parse("2026-03-27T12:00:00Z"),
    faults: parseFaults("fd=0.02,timeout=0.005"),
  });
  assert.equal(summary.state, "completed");
  assert.equal(summary.pending, 0);
  assert.ok(summary.activated >= 19_800, `${summary.activated} activated`);
  assert.deepEqual(summary.windows!.values, ["berlin", "new-york", "tokyo"]);
  assert.ok(summary.windows!.initiates > 20_000, "retries happened too");
  assert.equal(summary.windows!.outsideWindow, 0, "no INITIATE outside its device's window");
  // At 50 starts a minute in about 11 open hours a day, 20,000 devices take more than one night.
  assert.ok(summary.simulatedSeconds > 86_400 && summary.simulatedSeconds < 7 * 86_400);
});

Deno.test("sim --virtual --start --tag-values deals the values and prints the window check", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      MAIN,
      "sim",
      "--virtual",
      "--policy",
      NIGHT,
      "--devices",
      "300",
      "--start",
      "2026-10-24T00:00:00Z",
      "--tag-values",
      "tokyo,paris",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.match(out, /state completed: 300 activated/);
  // paris has no group: its devices take the policy's fallback windows (open).
  assert.match(out, /windows by site \(tokyo, paris\): \d+ INITIATEs, 0 outside their window/);
});

Deno.test("sim --virtual refuses a malformed --start", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "sim", "--virtual", "--policy", NIGHT, "--start", "soon"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 2);
  assert.match(new TextDecoder().decode(stderr), /Invalid --start "soon"/);
});
