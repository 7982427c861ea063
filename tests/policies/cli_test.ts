import assert from "node:assert/strict";
import { join } from "node:path";
import { flotilla } from "../_helpers.ts";

const POLICIES = new URL("../../policies/", import.meta.url).pathname;

Deno.test("policy check passes the example policies with one OK line each", async () => {
  const files = ["canary.yaml", "fast.yaml", "two-phase.yaml"].map((f) => join(POLICIES, f));
  const { code, stdout, stderr } = await flotilla(["policy", "check", ...files]);
  assert.equal(stderr, "");
  assert.equal(code, 0);
  const lines = stdout.trim().split("\n");
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /^OK .*canary\.yaml \(canary, sha256 [0-9a-f]{12}\)$/);
});

Deno.test("policy check prints every error as file:line: path: message and exits 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = join(dir, "bad.yaml");
    const good = join(dir, "good.yaml");
    await Deno.writeTextFile(bad, "name: bad\nstages:\n  - percent: 50\nconcurency: 5\n");
    await Deno.writeTextFile(good, "name: good\nstages:\n  - percent: 100\n");
    const { code, stdout, stderr } = await flotilla(["policy", "check", bad, good]);
    assert.equal(code, 1);
    assert.deepEqual(stderr.trim().split("\n"), [
      `${bad}:3: stages[0].percent: The last stage must be 100: got 50`,
      `${bad}:4: concurency: Unknown key`,
    ]);
    assert.match(stdout, /^OK .*good\.yaml/);
    const whole = await flotilla(["policy", "check", dir]);
    assert.equal(whole.code, 1, "a directory is checked file by file");
    assert.equal(whole.stderr.trim().split("\n").length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("policy show prints the policy with its defaults and provenance", async () => {
  const { code, stdout } = await flotilla(["policy", "show", join(POLICIES, "fast.yaml")]);
  assert.equal(code, 0);
  const shown = JSON.parse(stdout);
  assert.equal(shown.policy.name, "fast");
  assert.equal(shown.policy.retry.backoff, 5_000);
  assert.match(shown.provenance.sha256, /^[0-9a-f]{64}$/);
});
