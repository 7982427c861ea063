import assert from "node:assert/strict";
import { join } from "node:path";
import { ADMIN_TOKEN, startTestService } from "../orchestrator/_service.ts";
import { randomPrivateKey, signManifest } from "../../srup/mod.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Runs `ctl --json` (the API's JSON, one line per answer) against `api`. */
async function ctl(api: string, args: string[], token = ADMIN_TOKEN) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "ctl", "--api", api, "--token", token, "--json", ...args],
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
      await t.step(
        "device reset-sequence sets or clears the floor, and checks --floor",
        async () => {
          const set = await ctl(api, [
            "device",
            "reset-sequence",
            id,
            "--floor",
            "18446744073709551615",
          ]);
          assert.equal(set.code, 0, set.stderr);
          assert.deepEqual(JSON.parse(set.lines[0]!), {
            id,
            previous: null,
            lastSequence: "18446744073709551615",
          });
          assert.equal(
            JSON.parse((await ctl(api, ["device", "get", id])).lines[0]!).lastSequence,
            "18446744073709551615",
          );
          const cleared = await ctlText(api, ["device", "reset-sequence", id]);
          assert.equal(cleared.code, 0, cleared.stderr);
          assert.equal(
            cleared.stdout.trim(),
            `device ${id}: sequence floor 18446744073709551615 -> none`,
          );
          for (const bad of ["-1", "abc", "18446744073709551616", "1e3"]) {
            const refused = await ctl(api, ["device", "reset-sequence", id, `--floor=${bad}`]);
            assert.equal(refused.code, 2, `${bad}: ${refused.stderr}`);
            assert.equal(
              refused.stderr.trim(),
              `ctl: Invalid --floor "${bad}": expected a decimal integer from 0 to 18446744073709551615`,
            );
          }
          const noId = await ctl(api, ["device", "reset-sequence"]);
          assert.equal(noId.code, 2);
          assert.equal(noId.stderr.trim().split("\n").length, 1);
          const missing = await ctl(api, ["device", "reset-sequence", crypto.randomUUID()]);
          assert.equal(missing.code, 1);
          assert.match(missing.stderr, /^404 not_found: No device/);
        },
      );
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
      await t.step("device tag retags; rollout create --start-at schedules it, shown", async () => {
        const night = crypto.randomUUID();
        const key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        await ctl(api, ["device", "register", "--id", night, "--public-key", key]);
        const tagged = await ctl(api, ["device", "tag", night, "--tag", "shift=night"]);
        assert.equal(tagged.code, 0, tagged.stderr);
        assert.deepEqual(JSON.parse(tagged.lines[0]!).tags, { shift: "night" });
        const startAt = new Date(Date.now() + 3_600_000).toISOString();
        const digest = "e".repeat(64);
        const created = await ctlText(api, [
          "rollout",
          "create",
          "--digest",
          digest,
          "--url",
          "https://files.example/fw.bin",
          "--policy",
          "fast",
          "--tag",
          "shift=night",
          "--start-at",
          startAt,
        ]);
        assert.equal(created.code, 0, created.stderr);
        assert.match(created.stdout, /^rollout \S+: scheduled, stage 1 of 2, 1 devices$/m);
        assert.match(created.stdout, new RegExp(`^  starts at ${startAt}$`, "m"));
        const listed = await ctlText(api, ["rollout", "list", "--state", "scheduled"]);
        assert.equal(listed.code, 0, listed.stderr);
        const [heading, line] = listed.stdout.trim().split("\n");
        assert.match(heading!, /^ID +STATE +STAGE .* START AT$/);
        assert.match(line!, new RegExp(`scheduled .* ${startAt}$`));
        const bad = await ctl(api, [
          "rollout",
          "create",
          "--digest",
          digest,
          "--policy",
          "fast",
          "--tag",
          "shift=night",
          "--start-at",
          "2030-01-06T02:00",
        ]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /^422 invalid_start_at: .*give a UTC offset or Z/);
      });
      await t.step(
        "rollout create --rollback: no artifact, and a device with no previous version",
        async () => {
          const mixed = await ctl(api, [
            "rollout",
            "create",
            "--rollback",
            "--digest",
            "ab".repeat(32),
            "--policy",
            "fast",
            "--all",
          ]);
          assert.equal(mixed.code, 2);
          assert.match(mixed.stderr, /--rollback takes no --artifact, --digest or --url/);
          const nothing = await ctl(api, [
            "rollout",
            "create",
            "--rollback",
            "--policy",
            "fast",
            "--tag",
            "site=lab",
          ]);
          assert.equal(nothing.code, 1);
          assert.match(
            nothing.stderr,
            /^422 nothing_to_roll_back: None of the 1 targeted device\(s\) has a previous version recorded/,
          );
        },
      );
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

/** Runs `ctl` without `--json`: the text a person reads. */
async function ctlText(api: string, args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "ctl", "--api", api, "--token", ADMIN_TOKEN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Runs a streaming `ctl` command until it printed `count` lines, then stops it; those lines. */
async function ctlLines(api: string, args: string[], count: number): Promise<string[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "ctl", "--api", api, "--token", ADMIN_TOKEN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(30_000),
  }).spawn();
  const lines: string[] = [];
  let buffer = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  while (lines.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      lines.push(buffer.slice(0, end));
      buffer = buffer.slice(end + 1);
    }
  }
  await reader.cancel();
  try {
    child.kill("SIGTERM");
  } catch {
    // ended by itself
  }
  const status = await child.status;
  await child.stderr.cancel();
  assert.ok(lines.length >= count, `ctl ${args.join(" ")} exited ${status.code} early`);
  return lines.slice(0, count);
}

Deno.test({
  name: "ctl: events filters, one tag syntax, text or --json, policy files with every problem",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    const api = service.apiUrl;
    const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    try {
      const lab = crypto.randomUUID();
      const home = crypto.randomUUID();
      let rolloutId = "";
      await t.step("device import registers JSON lines, with --tag key=value added", async () => {
        const file = join(root, "devices.jsonl");
        await Deno.writeTextFile(
          file,
          `${JSON.stringify({ id: lab, publicKey: KEY, tags: { site: "lab" } })}\n` +
            `${JSON.stringify({ id: home, publicKey: KEY, tags: { site: "home" } })}\n`,
        );
        const imported = await ctl(api, ["device", "import", file, "--tag", "batch=1"]);
        assert.equal(imported.code, 0, imported.stderr);
        assert.deepEqual(JSON.parse(imported.lines[0]!), { created: 2, skipped: 0 });
      });
      await t.step(
        "device list --tag key=value selects by tag; key:value is a usage error",
        async () => {
          const listed = await ctl(api, [
            "device",
            "list",
            "--tag",
            "site=lab",
            "--tag",
            "batch=1",
          ]);
          assert.equal(listed.code, 0, listed.stderr);
          assert.deepEqual(JSON.parse(listed.lines[0]!).items.map((d: { id: string }) => d.id), [
            lab,
          ]);
          const colon = await ctl(api, ["device", "list", "--tag", "site:lab"]);
          assert.equal(colon.code, 2);
          assert.equal(colon.stderr.trim(), 'ctl: Invalid --tag "site:lab": expected key=value');
        },
      );
      await t.step(
        "device list takes the console's filters: --id-prefix, --online, --artifact, --seen-after/--seen-before",
        async () => {
          const ids = async (args: string[]) => {
            const listed = await ctl(api, ["device", "list", ...args]);
            assert.equal(listed.code, 0, listed.stderr);
            return JSON.parse(listed.lines[0]!).items.map((d: { id: string }) => d.id).sort();
          };
          assert.deepEqual(await ids(["--id-prefix", lab.slice(0, 8)]), [lab]);
          // Never connected to the embedded broker: offline, never seen.
          assert.deepEqual(await ids(["--online", "false"]), [lab, home].sort());
          assert.deepEqual(await ids(["--online", "true"]), []);
          assert.deepEqual(await ids(["--artifact", "a".repeat(64)]), []);
          assert.deepEqual(await ids(["--seen-after", "2000-01-01T00:00:00Z"]), []);
          assert.deepEqual(
            await ids(["--seen-before", "2000-01-01T00:00:00Z"]),
            [lab, home].sort(),
          );
          const bad = await ctl(api, ["device", "list", "--online", "yes"]);
          assert.equal(bad.code, 2);
          assert.equal(bad.stderr.trim(), 'ctl: Invalid --online "yes": expected true or false');
        },
      );
      await t.step("without --json, answers are text: a table of devices", async () => {
        const text = await ctlText(api, ["device", "list", "--tag", "site=home"]);
        assert.equal(text.code, 0, text.stderr);
        const lines = text.stdout.trim().split("\n");
        assert.match(lines[0]!, /^ID\s+CURRENT\s+LAST SEEN\s+TAGS$/);
        assert.match(lines[1]!, new RegExp(`^${home}\\s+-\\s+-\\s+site=home,batch=1$`));
        assert.equal(lines.length, 2);
      });
      await t.step("rollout create --policy-file prints every problem with its line", async () => {
        const file = join(root, "broken.yaml");
        await Deno.writeTextFile(
          file,
          "name: broken\nstages:\n  - percent: 50\n  - percent: 20\n    bake: nonsense\n" +
            "  - percent: 30\nconcurrency: -1\nretry:\n  attempts: 0\ncolour: blue\n",
        );
        const refused = await ctl(api, [
          "rollout",
          "create",
          "--digest",
          "ab".repeat(32),
          "--policy-file",
          file,
          "--all",
        ]);
        assert.equal(refused.code, 1);
        assert.deepEqual(refused.stderr.trim().split("\n"), [
          `${file}:4: stages[1].percent: Must be more than the previous stage's 50`,
          `${file}:5: stages[1].bake: Invalid duration "nonsense": use a number and a unit (ms, s, m, h, d)`,
          `${file}:6: stages[2].percent: The last stage must be 100: got 30`,
          `${file}:7: concurrency: Too small: expected number to be >0`,
          `${file}:9: retry.attempts: Too small: expected number to be >=1`,
          `${file}:10: colour: Unknown key`,
          `Cannot create rollout: policy file "${file}" has 6 problem(s), listed above`,
        ]);
      });
      await t.step("rollout create --tag key=value with a policy file", async () => {
        const fw = join(root, "fw.bin");
        await Deno.writeFile(fw, crypto.getRandomValues(new Uint8Array(1024)));
        const file = join(root, "good.yaml");
        await Deno.writeTextFile(file, "name: good\nstages:\n  - percent: 100\n");
        const created = await ctl(api, [
          "rollout",
          "create",
          "--artifact",
          fw,
          "--policy-file",
          file,
          "--tag",
          "site=lab",
        ]);
        assert.equal(created.code, 0, created.stderr);
        const rollout = JSON.parse(created.lines[0]!);
        assert.equal(rollout.devices, 1);
        assert.equal(rollout.policy.name, "good");
        rolloutId = rollout.id;
        assert.equal((await ctl(api, ["rollout", "cancel", rolloutId])).code, 0);
      });
      await t.step(
        "events --after 0, --rollout ID and --device ID stream what they name",
        async () => {
          const all = (await ctlLines(api, ["events", "--after", "0", "--json"], 3)).map((line) =>
            JSON.parse(line)
          );
          assert.deepEqual(all.map((e) => e.id), [1, 2, 3]);
          const ofRollout =
            (await ctlLines(api, ["events", "--rollout", rolloutId, "--after", "0", "--json"], 2))
              .map((line) => JSON.parse(line));
          assert.ok(ofRollout.every((e) => e.rolloutId === rolloutId));
          assert.equal(ofRollout[0].type, "rollout.created");
          const ofDevice =
            (await ctlLines(api, ["--json", "events", "--device", lab, "--after", "0"], 1))
              .map((line) => JSON.parse(line));
          assert.equal(ofDevice[0].deviceId, lab);
          const text = await ctlLines(api, ["events", "--rollout", rolloutId, "--after", "0"], 1);
          assert.match(text[0]!, new RegExp(`^\\S+Z  #1  rollout\\.created  rollout ${rolloutId}`));
        },
      );
      await t.step("rollout watch of an ended rollout prints its events and exits 0", async () => {
        const watched = await ctl(api, ["rollout", "watch", rolloutId]);
        assert.equal(watched.code, 0, watched.stderr);
        assert.equal(JSON.parse(watched.lines.at(-1)!).type, "rollout.cancelled");
      });
      await t.step("rollout preview, the history pages, me and states have commands", async () => {
        const preview = await ctl(api, [
          "rollout",
          "preview",
          "--policy",
          "canary",
          "--tag",
          "site=lab",
        ]);
        assert.equal(preview.code, 0, preview.stderr);
        assert.equal(JSON.parse(preview.lines[0]!).devices, 1);
        const history = await ctl(api, ["device", "rollouts", lab]);
        assert.deepEqual(
          JSON.parse(history.lines[0]!).items.map((h: { rolloutId: string }) => h.rolloutId),
          [
            rolloutId,
          ],
        );
        const deviceEvents = JSON.parse((await ctl(api, ["device", "events", lab])).lines[0]!);
        assert.ok(deviceEvents.items.length > 0);
        assert.ok(deviceEvents.items.every((e: { deviceId: string }) => e.deviceId === lab));
        const rolloutEvents = await ctl(api, ["rollout", "events", rolloutId, "--limit", "1"]);
        const page = JSON.parse(rolloutEvents.lines[0]!);
        assert.equal(page.items.length, 1);
        assert.equal(page.items[0].rolloutId, rolloutId);
        assert.equal(typeof page.nextCursor, "number");
        const older = await ctlText(api, [
          "rollout",
          "events",
          rolloutId,
          "--before",
          String(page.nextCursor),
        ]);
        assert.match(older.stdout, /^ID\s+AT\s+TYPE/);
        assert.match(older.stdout, /rollout\.created/);
        assert.deepEqual(JSON.parse((await ctl(api, ["me"])).lines[0]!).role, "admin");
        assert.ok(
          JSON.parse((await ctl(api, ["states"])).lines[0]!).finalRolloutStates.includes(
            "completed",
          ),
        );
        // One node on PGlite: the cluster is the node answering, in single mode.
        const cluster = JSON.parse((await ctl(api, ["cluster"])).lines[0]!);
        assert.equal(cluster.mode, "single");
        assert.deepEqual(cluster.nodes.map((n: { id: string }) => n.id), ["n1"]);
        const shown = await ctlText(api, ["cluster"]);
        assert.match(shown.stdout, /^node n1 \(single\)\nNODE\s+STARTED\s+HEARTBEAT\s+ROLLOUTS/);
      });
      await t.step("artifact upload takes --name, --version and --release-notes", async () => {
        const file = join(root, "named.bin");
        await Deno.writeFile(file, crypto.getRandomValues(new Uint8Array(512)));
        const uploaded = await ctl(api, [
          "artifact",
          "upload",
          file,
          "--name",
          "sensor-firmware",
          "--version",
          "2.1.0",
          "--release-notes",
          "Fixes the clock drift",
        ]);
        assert.equal(uploaded.code, 0, uploaded.stderr);
        const artifact = JSON.parse(uploaded.lines[0]!);
        assert.deepEqual(
          [artifact.name, artifact.version, artifact.releaseNotes, artifact.size],
          ["sensor-firmware", "2.1.0", "Fixes the clock drift", 512],
        );
        const bad = await ctl(api, ["artifact", "upload", file, "--version", "9".repeat(65)]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /^400 invalid_request: Invalid query: "version"/);
      });
      await t.step(
        "artifact upload --manifest and artifact manifest give a signed manifest",
        async () => {
          const bytes = crypto.getRandomValues(new Uint8Array(300));
          const file = join(root, "signed.bin");
          await Deno.writeFile(file, bytes);
          const manifest = join(root, "signed.manifest");
          const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
          const release = { digest, size: 300, name: "fw", version: "3.0.0", hardware: [] };
          await Deno.writeFile(
            manifest,
            await signManifest({ ...release, securityVersion: 4 }, randomPrivateKey()),
          );
          const uploaded = await ctl(api, ["artifact", "upload", file, "--manifest", manifest]);
          assert.equal(uploaded.code, 0, uploaded.stderr);
          assert.equal(JSON.parse(uploaded.lines[0]!).release.securityVersion, 4);
          await Deno.writeFile(
            manifest,
            await signManifest({ ...release, securityVersion: 5 }, randomPrivateKey()),
          );
          const replaced = await ctl(api, ["artifact", "manifest", digest.toHex(), manifest]);
          assert.equal(replaced.code, 0, replaced.stderr);
          assert.equal(JSON.parse(replaced.lines[0]!).release.securityVersion, 5);
          const missing = await ctl(api, [
            "artifact",
            "manifest",
            digest.toHex(),
            join(root, "nope"),
          ]);
          assert.equal(missing.code, 2);
          assert.match(missing.stderr, /Cannot read manifest ".*nope"/);
        },
      );
      await t.step(
        "artifact get, health and token list answer through the typed client",
        async () => {
          const artifacts = JSON.parse((await ctl(api, ["artifact", "list"])).lines[0]!);
          const digest = artifacts.items[0].digest;
          const one = await ctl(api, ["artifact", "get", digest]);
          assert.equal(JSON.parse(one.lines[0]!).digest, digest);
          const health = await ctl(api, ["health"]);
          const { live, ready } = JSON.parse(health.lines[0]!);
          assert.deepEqual(live, { status: "ok" });
          assert.equal(ready.status, "ready");
          const tokens = await ctlText(api, ["token", "list"]);
          assert.match(tokens.stdout, /^ID\s+NAME\s+ROLE/);
        },
      );
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
