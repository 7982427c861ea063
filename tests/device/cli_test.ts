import assert from "node:assert/strict";
import { join } from "node:path";
import { startEmbeddedBroker } from "../../mqtt/mod.ts";
import {
  ACTIVATE_SUCCESS,
  fromBase64,
  keyFingerprint,
  nativeEd25519,
  newToken,
  privateKeyFromPem,
  toBase64,
  toHex,
  UPDATE_SUCCESS,
} from "../../srup/mod.ts";
import { TEST_PUBLIC_KEY } from "../_helpers.ts";
import { within } from "../mqtt/_brokers.ts";
import { deviceHarness, FIRMWARE } from "./_harness.ts";
import { sha256 } from "./_fixture.ts";
import { flotilla, MAIN } from "../_helpers.ts";

/** `device run` as a child process whose JSON log lines can be awaited. */
function spawnDevice(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "device", "run", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const events: Record<string, unknown>[] = [];
  const waiters: { event: string; resolve: () => void }[] = [];
  const reading = (async () => {
    let buffer = "";
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const parsed = JSON.parse(line);
        events.push(parsed);
        for (const waiter of waiters.filter((w) => w.event === parsed.event)) waiter.resolve();
      }
    }
  })();
  return {
    child,
    events,
    /** Resolves once `event` has been logged (now or before). */
    logged(event: string): Promise<void> {
      if (events.some((e) => e.event === event)) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiters.push({ event, resolve });
      return within(promise, `"${event}" from device run`, 20_000);
    },
    async exit(): Promise<Deno.CommandStatus> {
      const status = await within(child.status, "device run to exit", 20_000);
      await reading;
      return status;
    },
  };
}

Deno.test("device provision writes a 0600 key and prints the id, public key and frame version", async (t) => {
  const dir = join(await Deno.makeTempDir(), "dev");
  try {
    const { code, stdout } = await flotilla(["device", "provision", "--out", dir]);
    assert.equal(code, 0);
    const printed = JSON.parse(stdout);
    assert.deepEqual(Object.keys(printed), ["id", "publicKey", "frameVersion"]);
    assert.equal(printed.frameVersion, 3, "this agent takes signed releases ([SRUP-7])");
    assert.match(
      printed.id,
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    const keyPath = join(dir, "device.key");
    assert.equal((await Deno.stat(keyPath)).mode! & 0o777, 0o600);
    const seed = privateKeyFromPem(await Deno.readTextFile(keyPath));
    assert.deepEqual(await nativeEd25519.getPublicKey(seed), fromBase64(printed.publicKey));

    await t.step("status of a fresh device: nothing installed", async () => {
      const status = await flotilla(["device", "status", "--dir", dir]);
      assert.equal(status.code, 0);
      assert.deepEqual(JSON.parse(status.stdout), {
        id: printed.id,
        publicKey: printed.publicKey,
        keyFingerprint: keyFingerprint(fromBase64(printed.publicKey)),
        current: null,
        previous: null,
        staged: null,
        securityVersion: 0,
        serverKey: null,
        nextKeyFingerprint: null,
        releaseKeySetVersion: 1,
      });
    });
    await t.step("a second provision refuses to replace the key: exit 1, one line", async () => {
      const again = await flotilla(["device", "provision", "--out", dir]);
      assert.equal(again.code, 1);
      assert.equal(again.stderr.trim(), `Cannot provision device: "${keyPath}" already exists`);
    });
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});

Deno.test("device commands report bad usage in one line with exit code 2", async () => {
  const key = toBase64(TEST_PUBLIC_KEY);
  const cases: [string[], RegExp][] = [
    [["device", "run"], /^device: device run needs --dir DIR$/],
    [["device", "run", "--dir", "d", "--broker", "mqtt://x"], /needs --server-key BASE64/],
    [
      ["device", "run", "--dir", "d", "--server-key", "AAAA", "--broker", "mqtt://x"],
      /Invalid --server-key "AAAA": expected base64 of 32 bytes/,
    ],
    [
      ["device", "run", "--dir", "d", "--server-key", key, "--broker", "x", "--server-id", "zz"],
      /Invalid --server-id "zz": expected hex/,
    ],
    [
      ["device", "run", "--dir", "d", "--server-key", key, "--broker", "http://x"],
      /^device: Invalid --broker: Invalid broker URL: "http:\/\/x" must start with mqtt:\/\/ or mqtts:\/\/$/,
    ],
    [
      [
        "device",
        "run",
        "--dir",
        "d",
        "--server-key",
        key,
        "--broker",
        "mqtt://x",
        "--mqtt-key",
        "k",
      ],
      /--mqtt-cert and --mqtt-key go together/,
    ],
    [["device", "status"], /device status needs --dir DIR/],
    [["device", "frobnicate"], /Unknown device command "frobnicate"/],
    [["device", "status", "--dir", "d", "--bogus"], /Unknown option '--bogus'/],
  ];
  for (const [args, pattern] of cases) {
    const { code, stderr } = await flotilla(args);
    assert.equal(code, 2, args.join(" "));
    assert.equal(stderr.trim().split("\n").length, 1);
    assert.match(stderr.trim(), pattern);
  }
});

Deno.test("device run fails in one line with exit code 1 for a directory that was never provisioned", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, stderr } = await flotilla([
      "device",
      "run",
      "--dir",
      dir,
      "--server-key",
      toBase64(TEST_PUBLIC_KEY),
      "--broker",
      "mqtt://127.0.0.1:1",
    ]);
    assert.equal(code, 1);
    assert.match(stderr.trim(), /^Cannot read device id ".*device\.json": /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a second device run on the same --dir exits 1 with one line; the first keeps running", async () => {
  const broker = await startEmbeddedBroker({ port: 0 });
  const h = await deviceHarness(broker.url);
  const args = ["--dir", h.dir, "--server-key", toBase64(TEST_PUBLIC_KEY), "--broker", broker.url];
  try {
    const first = spawnDevice(args);
    await first.logged("device.started");
    // Killed if it runs on (without the lock it would, knocking the first off the broker).
    const second = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MAIN, "device", "run", ...args],
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    assert.equal(second.code, 1);
    assert.equal(
      new TextDecoder().decode(second.stderr).trim(),
      `Cannot run device: another agent is running on "${h.dir}" (it holds "${
        join(h.dir, "agent.lock")
      }")`,
    );
    assert.equal(first.events.filter((e) => e.event === "mqtt.connected").length, 1);
    first.child.kill("SIGTERM");
    assert.equal((await first.exit()).code, 0);
    // Released on exit: the directory can be run again.
    const again = spawnDevice(args);
    await again.logged("device.started");
    again.child.kill("SIGTERM");
    assert.equal((await again.exit()).code, 0);
  } finally {
    await h.close();
    await broker.close();
  }
});

Deno.test("device run survives SIGKILL mid-download and a restart, then updates and activates", async (t) => {
  const broker = await startEmbeddedBroker({ port: 0 });
  const h = await deviceHarness(broker.url);
  const digest = await sha256(FIRMWARE);
  const { promise: downloadStarted, resolve: startedDownload } = Promise.withResolvers<void>();
  const stalled: ReadableStreamDefaultController<Uint8Array>[] = [];
  const files = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    if (new URL(request.url).pathname === "/stall.bin") {
      return new Response(
        new ReadableStream({
          start(controller) {
            stalled.push(controller);
            controller.enqueue(FIRMWARE.subarray(0, 4096));
            startedDownload();
          },
        }),
      );
    }
    return new Response(FIRMWARE);
  });
  const base = `http://127.0.0.1:${files.addr.port}`;
  const args = [
    "--dir",
    h.dir,
    "--server-key",
    toBase64(TEST_PUBLIC_KEY),
    "--broker",
    broker.url,
    "--server-id",
    h.link.serverId,
  ];
  try {
    const stalledToken = newToken();
    await t.step("killed with SIGKILL while the download is in flight", async () => {
      const device = spawnDevice(args);
      await device.logged("device.started");
      await h.link.sendInitiate(h.id, { token: stalledToken, url: `${base}/stall.bin`, digest });
      await within(downloadStarted, "the download to start");
      device.child.kill("SIGKILL");
      assert.equal((await device.exit()).signal, "SIGKILL");
      // Usually already cancelled by the dead connection; closing makes sure shutdown can finish.
      for (const controller of stalled) {
        try {
          controller.close();
        } catch {
          // cancelled
        }
      }
      const status = await flotilla(["device", "status", "--dir", h.dir]);
      assert.equal(status.code, 0);
      assert.equal(JSON.parse(status.stdout).staged, null);
    });
    const token = newToken();
    await t.step("restarted: a new INITIATE is staged; SIGTERM exits 0", async () => {
      const device = spawnDevice(args);
      await device.logged("device.started");
      await h.link.sendInitiate(h.id, { token, url: `${base}/fw.bin`, digest });
      assert.equal((await h.response(token)).status, UPDATE_SUCCESS);
      device.child.kill("SIGTERM");
      assert.equal((await device.exit()).code, 0);
      assert.ok(device.events.some((e) => e.event === "device.stopped"));
      // The INITIATE cut off by the kill is never answered: it was recorded as seen first.
      assert.equal(h.responses.filter((r) => toHex(r.token) === toHex(stalledToken)).length, 0);
    });
    await t.step("restarted again: ACTIVATE switches, status shows the new digest", async () => {
      const device = spawnDevice(args);
      await device.logged("device.started");
      await h.link.sendActivate(h.id, { token });
      assert.equal((await h.response(token, 2)).status, ACTIVATE_SUCCESS);
      device.child.kill("SIGTERM");
      assert.equal((await device.exit()).code, 0);
      const status = JSON.parse((await flotilla(["device", "status", "--dir", h.dir])).stdout);
      assert.deepEqual(status, {
        id: h.id,
        publicKey: toBase64(h.publicKey),
        keyFingerprint: keyFingerprint(h.publicKey),
        current: toHex(digest),
        previous: null,
        staged: null,
        securityVersion: 0,
        serverKey: null,
        nextKeyFingerprint: null,
        releaseKeySetVersion: 1,
      });
      assert.deepEqual(await Deno.readFile(join(h.dir, "current")), FIRMWARE);
    });
  } finally {
    await h.close();
    await files.shutdown();
    await broker.close();
  }
});
