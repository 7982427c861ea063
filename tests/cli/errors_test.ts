import assert from "node:assert/strict";
import { join } from "node:path";
import { flotilla } from "../_helpers.ts";
import { ADMIN_TOKEN, startTestService } from "../orchestrator/_service.ts";

const POLICY = new URL("../../policies/fast.yaml", import.meta.url).pathname;
const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/** A bad invocation: its arguments and environment, the exit code and stderr line expected. */
type Case = [args: string[], env: Record<string, string>, code: 1 | 2, line: RegExp];

/** A loopback port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function assertOneLine([args, env, code, line]: Case): Promise<void> {
  const result = await flotilla(args, { env });
  const what = `${Object.entries(env).map(([k, v]) => `${k}=${v} `).join("")}${args.join(" ")}`;
  assert.equal(result.code, code, `${what}: exit code (stderr: ${result.stderr})`);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /^\s+at /m, `${what}: no stack frames`);
  assert.match(lines[0]!, line, what);
}

Deno.test("every CLI error is one line: usage errors exit 2, runtime errors 1", async (t) => {
  const down = `http://127.0.0.1:${closedPort()}`;
  const dir = await Deno.makeTempDir();
  const cases: Case[] = [
    [
      ["ctl", "rollout", "list"],
      { FLOTILLA_API: "not-a-url", FLOTILLA_TOKEN: "t" },
      2,
      /^ctl: Invalid FLOTILLA_API "not-a-url": expected an http:\/\/ or https:\/\/ URL$/,
    ],
    [
      ["ctl", "rollout", "list"],
      { FLOTILLA_API: "127.0.0.1:8080", FLOTILLA_TOKEN: "t" },
      2,
      /^ctl: Invalid FLOTILLA_API "127\.0\.0\.1:8080"/,
    ],
    [["ctl", "--api", "localhost:8080", "--token", "t", "server"], {}, 2, /^ctl: Invalid --api/],
    [
      ["ctl", "--api", down, "--token", "t", "rollout", "list"],
      {},
      1,
      /^Cannot reach the API at "http:\/\/127\.0\.0\.1:\d+": /,
    ],
    [["ctl", "--api", down, "--token", "t", "events", "--after"], {}, 2, /^ctl: .*--after/],
    [
      ["sim", "--policy", POLICY, "--api", down, "--token", "t"],
      {},
      1,
      /^Cannot reach the API at "http:\/\/127\.0\.0\.1:\d+": /,
    ],
    [
      ["sim", "--policy", POLICY, "--api", "x:1", "--token", "t"],
      {},
      2,
      /^sim: Invalid --api "x:1"/,
    ],
    [
      ["device", "run", "--dir", dir, "--server-key", KEY, "--broker", "http://x"],
      {},
      2,
      /^device: Invalid --broker: /,
    ],
    [["device", "status", "--dir", join(dir, "none")], {}, 1, /^Cannot read device id /],
    [
      [
        "device",
        "run",
        "--dir",
        dir,
        "--server-key",
        KEY,
        "--broker",
        "mqtt://x",
        "--http-ca",
        join(dir, "none"),
      ],
      {},
      2,
      /^device: Cannot read --http-ca ".*none": /,
    ],
    [
      ["serve"],
      { FLOTILLA_HOST: "999.1.1.1", FLOTILLA_DATA_DIR: dir },
      1,
      /^flotilla serve: Invalid FLOTILLA_HOST: "999\.1\.1\.1" is not an IP address or host name$/,
    ],
    [
      ["serve"],
      { FLOTILLA_POLICY_DIR: "/nonexistent", FLOTILLA_DATA_DIR: dir },
      1,
      /^flotilla serve: Invalid FLOTILLA_POLICY_DIR: "\/nonexistent" cannot be read: /,
    ],
    [["srup", "keygen"], {}, 2, /^srup: srup keygen needs --out DIR$/],
    [["policy", "show"], {}, 2, /^policy: policy show takes one FILE$/],
  ];
  try {
    for (const item of cases) {
      await t.step(item[0].join(" "), () => assertOneLine(item));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a wrong token is one line and exit 1 from ctl and sim",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    try {
      const api = service.apiUrl;
      const wrong = `not-${ADMIN_TOKEN}`;
      await assertOneLine([
        ["ctl", "--api", api, "--token", wrong, "server"],
        {},
        1,
        /^401 unauthorized: /,
      ]);
      await assertOneLine([
        ["sim", "--policy", POLICY, "--api", api, "--token", wrong, "--devices", "2"],
        {},
        1,
        /^401 unauthorized: /,
      ]);
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
