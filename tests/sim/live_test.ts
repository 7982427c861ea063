import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { loadSimKeys, parseFaults, runLive } from "../../sim/mod.ts";
import { startSimTarget } from "../../app/mod.ts";

const POLICY = new URL("../../policies/fast.yaml", import.meta.url);

Deno.test("loadSimKeys() caches keys so a rerun reuses them and extends the cache", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await loadSimKeys(dir, 3);
    assert.equal(first.generated, 3);
    const again = await loadSimKeys(dir, 5);
    assert.equal(again.generated, 2);
    assert.deepEqual(again.ids.slice(0, 3), first.ids);
    assert.deepEqual(again.seeds.subarray(0, 96), first.seeds);
    assert.equal(new Set(again.ids).size, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "runLive() drives a rollout over real MQTT to its end through injected faults",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const dir = await Deno.makeTempDir();
    const external = Deno.env.get("FLOTILLA_TEST_MQTT_URL");
    try {
      const progress: string[] = [];
      const summary = await runLive({
        policy: parseYaml(await Deno.readTextFile(POLICY)),
        devices: 120,
        seed: 7,
        faults: parseFaults("fd=0.05"),
        offline: 0.05,
        offlineMs: 1_000,
        crash: 0.05,
        restartMs: 200,
        workers: 2,
        // Policy time 60x: the 2 m response timeout takes 2 s, the 5 s backoff under 0.1 s.
        speed: 60,
        keyDir: join(dir, "keys"),
        startLocal: startSimTarget,
        env: { FLOTILLA_DATA_DIR: join(dir, "data"), ...(external ? { MQTT_URL: external } : {}) },
        onProgress: (sample) => progress.push(sample.state),
      });
      await t.step("the rollout completes with every device accounted for", () => {
        assert.equal(summary.state, "completed");
        assert.equal(summary.devices, 120);
        assert.equal(summary.activated + summary.failed, 120);
        // fast.yaml needs 90% success; a device fails only when both its attempts fail.
        assert.ok(summary.activated >= 108, `activated ${summary.activated}`);
        assert.equal(summary.latencyMs.count, summary.activated);
        assert.ok(summary.latencyMs.p50 > 0 && summary.latencyMs.p99 >= summary.latencyMs.p50);
        assert.ok(progress.length > 0);
      });
      await t.step("faults were injected and retried", () => {
        const injected = (summary.injected["0xfd"] ?? 0) + (summary.injected.crash ?? 0) +
          (summary.injected.offline ?? 0);
        assert.ok(injected > 0, JSON.stringify(summary.injected));
        assert.equal(summary.injected.restart, summary.injected.crash);
        const retried = Object.entries(summary.attempts)
          .filter(([n]) => Number(n) > 1).reduce((sum, [, count]) => sum + count, 0);
        assert.ok(retried > 0, JSON.stringify(summary.attempts));
        const total = Object.values(summary.attempts).reduce((a, b) => a + b, 0);
        assert.equal(total, 120);
      });
      await t.step("the report files are written", async () => {
        const { writeReport } = await import("../../sim/mod.ts");
        await writeReport(join(dir, "report"), summary);
        const json = JSON.parse(await Deno.readTextFile(join(dir, "report", "report.json")));
        assert.equal(json.activated, summary.activated);
        const html = await Deno.readTextFile(join(dir, "report", "report.html"));
        assert.equal((html.match(/<svg /g) ?? []).length, 3);
        assert.doesNotMatch(html, /<script|https?:\/\//);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
