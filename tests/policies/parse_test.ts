import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2";
import {
  formatDuration,
  formatIssue,
  parseDuration,
  parsePolicy,
  parseStartAt,
  PolicyError,
  type PolicyIssue,
  validatePolicy,
} from "../../policies/mod.ts";

/** The issues of a policy that must not parse, as `line: path: message` strings. */
function problems(text: string): string[] {
  try {
    parsePolicy(text, { source: "p.yaml" });
  } catch (error) {
    assert.ok(error instanceof PolicyError);
    return error.issues.map((i: PolicyIssue) => formatIssue(i));
  }
  assert.fail("the policy parsed");
}

Deno.test("parseDuration() reads ms, s, m, h, d and combinations", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("10m"), 600_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("2d"), 172_800_000);
  assert.equal(parseDuration("0s"), 0);
  for (const bad of ["", "10", "1.5h", "5 m", "-1s", "1w", "m"]) {
    assert.throws(() => parseDuration(bad), RangeError, bad);
  }
  assert.throws(() => parseDuration("25d"), /Duration "25d" exceeds 24d/);
  assert.equal(formatDuration(5_400_250), "1h30m250ms");
  assert.equal(formatDuration(0), "0s");
});

Deno.test("parsePolicy() fills in defaults and converts durations to milliseconds", () => {
  const { policy, provenance } = parsePolicy("name: tiny\nstages:\n  - percent: 100\n");
  assert.deepEqual(policy, {
    name: "tiny",
    stages: [{ percent: 100, bake: 0, approval: "auto" }],
    concurrency: 100,
    success: { minPercent: 100 },
    retry: { attempts: 3, backoff: 30_000, maxBackoff: 600_000, on: ["fc", "fd", "fe", "timeout"] },
    timeouts: { response: 600_000, activation: 300_000 },
    activation: "immediate",
    onAbort: "none",
  });
  assert.equal(provenance.source, "inline");
  assert.equal(
    provenance.sha256,
    sha256(new TextEncoder().encode("name: tiny\nstages:\n  - percent: 100\n")).toHex(),
  );
  assert.equal(provenance.commit, null);
});

Deno.test("parsePolicy() reads the issue's example with every key", () => {
  const { policy } = parsePolicy(`name: canary
stages:
  - percent: 1
  - percent: 10
    bake: 10m
  - percent: 50
    approval: manual
  - percent: 100
concurrency: 500
rate: { exponential: { base: 50, factor: 2, every: 100, on: succeeded } }
success: { minPercent: 95 }
failure: { maxPercent: 5, minDevices: 20, action: pause }
retry: { attempts: 3, backoff: 30s, maxBackoff: 10m, on: [fc, fd, fe, timeout] }
timeouts: { response: 10m, activation: 5m }
activation: stage
`);
  assert.deepEqual(policy.stages[1], { percent: 10, bake: 600_000, approval: "auto" });
  assert.equal(policy.stages[2]!.approval, "manual");
  assert.deepEqual(policy.rate, {
    exponential: { base: 50, factor: 2, every: 100, on: "succeeded" },
  });
  assert.deepEqual(policy.failure, {
    maxPercent: 5,
    minDevices: 20,
    action: "pause",
    scope: "stage",
  });
  assert.equal(policy.activation, "stage");
});

Deno.test("parsePolicy() names file, line, path and problem for every error", () => {
  assert.deepEqual(
    problems(`name: bad
stages:
  - percent: 10
  - percent: 5
    baek: 1m
  - percent: 50
concurrency: 0
rate: { perMinute: 10, burst: 5 }
retry: { backoff: 1h, maxBackoff: 10m }
timeouts: { response: soon }
colour: blue
`),
    [
      "p.yaml:4: stages[1].percent: Must be more than the previous stage's 10",
      "p.yaml:5: stages[1].baek: Unknown key",
      "p.yaml:6: stages[2].percent: The last stage must be 100: got 50",
      "p.yaml:7: concurrency: Too small: expected number to be >0",
      "p.yaml:8: rate.burst: Unknown key",
      "p.yaml:9: retry.maxBackoff: Must not be shorter than backoff",
      'p.yaml:10: timeouts.response: Invalid duration "soon": use a number and a unit (ms, s, m, h, d)',
      "p.yaml:11: colour: Unknown key",
    ],
  );
});

Deno.test("parsePolicy() reports stage order problems alongside field errors in the stages", () => {
  assert.deepEqual(
    problems(`name: broken
stages:
  - percent: 50
  - percent: 20
    bake: nonsense
  - percent: "x"
  - percent: 30
    approval: sometimes
concurrency: -1
`),
    [
      "p.yaml:4: stages[1].percent: Must be more than the previous stage's 50",
      'p.yaml:5: stages[1].bake: Invalid duration "nonsense": use a number and a unit (ms, s, m, h, d)',
      "p.yaml:6: stages[2].percent: Invalid input: expected number, received string",
      "p.yaml:7: stages[3].percent: The last stage must be 100: got 30",
      'p.yaml:8: stages[3].approval: Invalid option: expected one of "manual"|"auto"',
      "p.yaml:9: concurrency: Too small: expected number to be >0",
    ],
  );
});

Deno.test("parsePolicy() reports wrong types, missing keys and bad values", () => {
  assert.deepEqual(problems("stages: []\n"), [
    "p.yaml:1: name: Invalid input: expected string, received undefined",
    "p.yaml:1: stages: Needs at least one stage",
  ]);
  assert.deepEqual(problems("name: x\nstages:\n  - percent: '100'\nactivation: later\n"), [
    "p.yaml:3: stages[0].percent: Invalid input: expected number, received string",
    'p.yaml:4: activation: Invalid option: expected one of "immediate"|"stage"',
  ]);
  assert.match(
    problems("name: x\nstages: [{percent: 100}]\nretry: { on: [ff] }\n")[0]!,
    /^p\.yaml:3: retry\.on\[0\]: /,
  );
});

Deno.test("parsePolicy() reports YAML syntax errors with their line", () => {
  assert.deepEqual(problems("name: x\nstages:\n  - percent: 100\n  bad: [\n"), [
    "p.yaml:4: YAML: All mapping items must start at the same column",
    "p.yaml:5: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
  ]);
  assert.deepEqual(problems("name: x\nname: y\nstages: [{percent: 100}]\n"), [
    "p.yaml:2: YAML: Map keys must be unique",
  ]);
  assert.deepEqual(problems("- percent: 100\n"), [
    "p.yaml:1: A policy must be a YAML mapping of keys to values",
  ]);
  assert.deepEqual(problems(""), ["p.yaml:1: A policy must be a YAML mapping of keys to values"]);
});

Deno.test("PolicyError's message names the first problem and how many more", () => {
  try {
    parsePolicy("name: x\nstages: [{percent: 5}]\nfoo: 1\n", { source: "p.yaml" });
    assert.fail("parsed");
  } catch (error) {
    assert.equal(
      (error as Error).message,
      "Invalid policy: p.yaml:2: stages[0].percent: The last stage must be 100: got 5 (and 1 more)",
    );
  }
});

Deno.test("validatePolicy() checks a plain object with the same schema, paths without lines", () => {
  try {
    validatePolicy({ name: "x", stages: [{ percent: 100, wait: 1 }], concurrency: "many" });
    assert.fail("validated");
  } catch (error) {
    assert.ok(error instanceof PolicyError);
    assert.deepEqual(error.issues.map(formatIssue), [
      "inline: stages[0].wait: Unknown key",
      "inline: concurrency: Invalid input: expected number, received string",
    ]);
  }
  const a = validatePolicy({ name: "x", stages: [{ percent: 100 }], concurrency: 5 });
  const b = validatePolicy({ concurrency: 5, stages: [{ percent: 100 }], name: "x" });
  assert.equal(a.provenance.sha256, b.provenance.sha256, "the hash ignores key order");
  assert.equal(a.policy.concurrency, 5);
});

Deno.test("the example policies in policies/ are valid", async () => {
  for (const name of ["canary", "dynamic", "fast", "night-windows", "scheduled", "two-phase"]) {
    const text = await Deno.readTextFile(new URL(`../../policies/${name}.yaml`, import.meta.url));
    assert.equal(parsePolicy(text).policy.name, name);
  }
});

Deno.test("startAt is a date and time with an offset; each problem says which, with its line", () => {
  const policy = (startAt: string) =>
    `name: s\nstages:\n  - percent: 100\nstartAt: ${startAt}\ndynamic: true\n`;
  const good = parsePolicy(policy('"2030-01-06T02:00:00+01:00"')).policy;
  assert.equal(good.startAt, "2030-01-06T02:00:00+01:00");
  assert.equal(good.dynamic, true);
  assert.equal(parseStartAt(good.startAt!), Date.UTC(2030, 0, 6, 1));
  assert.equal(parseStartAt("2030-01-06T02:00Z"), Date.UTC(2030, 0, 6, 2));
  const cases: [string, RegExp][] = [
    ["next sunday", /expected an ISO 8601 date and time with an offset/],
    ["2030-01-06T02:00:00", /give a UTC offset or Z, such as "2030-01-06T02:00:00Z"/],
    ["2030-01-06", /expected an ISO 8601 date and time/],
    ["2030-02-30T02:00:00Z", /no such day, time of day or offset/],
    ["2030-01-06T24:00:00Z", /no such day, time of day or offset/],
    ["5", /Expected a date and time as a string/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => parsePolicy(policy(value), { source: "p.yaml" }), (error) => {
      assert.ok(error instanceof PolicyError);
      assert.equal(error.issues.length, 1, JSON.stringify(error.issues));
      const issue = error.issues[0]!;
      assert.deepEqual([issue.source, issue.line, issue.path], ["p.yaml", 4, "startAt"]);
      assert.match(issue.message, message);
      return true;
    }, value);
  }
  assert.throws(() => parsePolicy("name: d\nstages: [{percent: 100}]\ndynamic: yes\n"), /dynamic/);
});

Deno.test("parsePolicy() reads onAbort: rollback, and names file and line for any other value", () => {
  const { policy } = parsePolicy("name: undo\nstages: [{percent: 100}]\nonAbort: rollback\n");
  assert.equal(policy.onAbort, "rollback");
  assert.deepEqual(
    problems("name: undo\nstages: [{percent: 100}]\nonAbort: revert\n"),
    ['p.yaml:3: onAbort: Must be "none" or "rollback"'],
  );
});
