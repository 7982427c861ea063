import assert from "node:assert/strict";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CANARY = new URL("../../policies/canary.yaml", import.meta.url).pathname;

async function flotilla(args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code,
    stdout: new TextDecoder().decode(stdout),
    stderr: new TextDecoder().decode(stderr),
  };
}

Deno.test("sim --virtual --json prints the same summary for the same seed", async () => {
  const args = [
    "sim",
    "--virtual",
    "--devices",
    "500",
    "--policy",
    CANARY,
    "--seed",
    "9",
    "--fail",
    "fc=0.01,fd=0.02,fe=0.01,ff=0,timeout=0.01",
    "--latency",
    "200ms..5s",
    "--json",
  ];
  const [a, b] = await Promise.all([flotilla(args), flotilla(args)]);
  assert.equal(a.code, 0, a.stderr);
  const first = JSON.parse(a.stdout);
  const second = JSON.parse(b.stdout);
  for (
    const key of [
      "state",
      "devices",
      "activated",
      "failed",
      "haltReason",
      "stages",
      "attempts",
      "simulatedSeconds",
      "wallSeconds",
    ]
  ) {
    assert.ok(key in first, key);
  }
  delete first.wallSeconds;
  delete second.wallSeconds;
  assert.deepEqual(first, second);
  assert.equal(first.devices, 500);
});

Deno.test("sim prints a table without --json", async () => {
  const { code, stdout } = await flotilla([
    "sim",
    "--virtual",
    "--devices",
    "100",
    "--policy",
    CANARY,
  ]);
  assert.equal(code, 0);
  assert.match(stdout, /^stage +percent +devices +activated +failed/m);
});

Deno.test("sim refuses bad live and virtual flags in one line with exit 2", async () => {
  const live = await flotilla(["sim", "--policy", CANARY, "--api", "http://127.0.0.1:9"]);
  assert.equal(live.code, 2);
  assert.equal(live.stderr.trim().split("\n").length, 1);
  assert.match(live.stderr, /--api and --token go together/);
  const crash = await flotilla(["sim", "--policy", CANARY, "--crash", "2"]);
  assert.equal(crash.code, 2);
  assert.match(crash.stderr, /^sim: Invalid --crash "2"/);
  const bad = await flotilla(["sim", "--virtual", "--policy", CANARY, "--fail", "fz=1"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^sim: Invalid --fail: Invalid fault "fz=1"/);
  const devices = await flotilla(["sim", "--virtual", "--policy", CANARY, "--devices", "-5"]);
  assert.equal(devices.code, 2);
});
