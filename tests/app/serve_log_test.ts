import assert from "node:assert/strict";
import { join } from "node:path";
import { serveChild } from "../_helpers.ts";
import { ADMIN_TOKEN, POLICY_DIR } from "../orchestrator/_service.ts";

const AUTH = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** The value of the open event streams gauge in /metrics. */
async function openStreams(apiUrl: string): Promise<number> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text();
  const match = /^flotilla_event_streams (\d+)$/m.exec(text);
  assert.ok(match, "no flotilla_event_streams in /metrics");
  return Number(match[1]);
}

async function until(what: string, probe: () => Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test({
  name:
    "serve prints no Deno.serve legacy-abort warning, and event streams end when the client goes",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const serve = await serveChild({
      FLOTILLA_DATA_DIR: join(root, "data"),
      FLOTILLA_POLICY_DIR: POLICY_DIR,
      FLOTILLA_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    try {
      await t.step("a chunked JSON body (read through the body cap) is answered", async () => {
        const json = new TextEncoder().encode(JSON.stringify({ name: "chunked", role: "viewer" }));
        const response = await fetch(`${serve.apiUrl}/v1/tokens`, {
          method: "POST",
          headers: { ...AUTH, "content-type": "application/json" },
          // A stream has no length, so it goes out chunked and the body cap reads it.
          body: ReadableStream.from([json.subarray(0, 10), json.subarray(10)]),
        });
        assert.equal(response.status, 201, await response.text());
      });

      await t.step("an upload and a download are answered", async () => {
        const bytes = crypto.getRandomValues(new Uint8Array(2048));
        const uploaded = await fetch(`${serve.apiUrl}/v1/artifacts`, {
          method: "POST",
          headers: { ...AUTH, "content-type": "application/octet-stream" },
          body: bytes,
        });
        assert.equal(uploaded.status, 201);
        const { digest } = await uploaded.json();
        const download = await fetch(`${serve.apiUrl}/artifacts/${digest}`);
        assert.deepEqual(new Uint8Array(await download.arrayBuffer()), bytes);
      });

      await t.step("an event stream ends on the server when its client goes away", async () => {
        assert.equal(await openStreams(serve.apiUrl), 0);
        const abort = new AbortController();
        const stream = await fetch(`${serve.apiUrl}/v1/events`, {
          headers: AUTH,
          signal: abort.signal,
        });
        assert.equal(stream.status, 200);
        await until("the stream to open", async () => await openStreams(serve.apiUrl) === 1);
        abort.abort();
        await stream.body?.cancel().catch(() => {});
        await until("the stream to close", async () => await openStreams(serve.apiUrl) === 0);
      });
    } finally {
      const code = await serve.stop();
      await Deno.remove(root, { recursive: true });
      assert.equal(code, 0, serve.output());
    }
    assert.doesNotMatch(serve.output(), /legacy behavior|request\.signal/);
    assert.match(serve.output(), /flotilla is running/);
  },
});
