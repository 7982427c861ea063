import assert from "node:assert/strict";
import { join } from "node:path";
import { ADMIN_TOKEN, startTestService } from "../orchestrator/_service.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function ctl(api: string, args: string[], token = ADMIN_TOKEN) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "ctl", "--api", api, "--token", token, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  return {
    code: output.code,
    lines: stdout.trim().split("\n").filter(Boolean),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test({
  name: "ctl drives the API: register, upload, roll out, pause, and clear errors",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    const api = service.apiUrl;
    try {
      const id = crypto.randomUUID();
      await t.step("device register and get", async () => {
        const registered = await ctl(api, [
          "device",
          "register",
          "--id",
          id,
          "--public-key",
          "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
          "--tag",
          "site=lab",
        ]);
        assert.equal(registered.code, 0, registered.stderr);
        assert.deepEqual(JSON.parse(registered.lines[0]!).tags, { site: "lab" });
        const got = await ctl(api, ["device", "get", id]);
        assert.equal(JSON.parse(got.lines[0]!).id, id);
      });
      await t.step("rollout create uploads the file and prints the rollout", async () => {
        const file = join(root, "fw.bin");
        await Deno.writeFile(file, crypto.getRandomValues(new Uint8Array(2048)));
        const created = await ctl(api, [
          "rollout",
          "create",
          "--artifact",
          file,
          "--policy",
          "fast",
          "--tag",
          "site=lab",
        ]);
        assert.equal(created.code, 0, created.stderr);
        assert.equal(created.lines.length, 1);
        const rollout = JSON.parse(created.lines[0]!);
        assert.equal(rollout.state, "running");
        assert.equal(rollout.devices, 1);
        const paused = await ctl(api, ["rollout", "pause", rollout.id]);
        assert.equal(JSON.parse(paused.lines[0]!).state, "paused");
        const again = await ctl(api, ["rollout", "pause", rollout.id]);
        assert.equal(again.code, 1);
        assert.match(again.stderr, /^409 not_running: Cannot pause rollout: it is "paused"/);
      });
      await t.step("usage and auth errors are one clear line", async () => {
        const usage = await ctl(api, ["rollout", "create", "--policy", "fast"]);
        assert.equal(usage.code, 2);
        assert.match(usage.stderr, /give exactly one of --all, --ids and --tag/);
        const denied = await ctl(api, ["server"], "wrong-token-0123456789");
        assert.equal(denied.code, 1);
        assert.match(denied.stderr, /^401 unauthorized: Invalid or revoked token/);
        const unknown = await ctl(api, ["frob", "nicate"]);
        assert.equal(unknown.code, 2);
        assert.match(unknown.stderr, /unknown command "frob nicate"/);
      });
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
