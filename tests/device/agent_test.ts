import assert from "node:assert/strict";
import {
  ACTIVATE_SUCCESS,
  encodeMessage,
  randomPrivateKey,
  signMessage,
  toHex,
  UPDATE_FAIL_DIGEST,
  UPDATE_FAIL_FILE,
  UPDATE_FAIL_HTTP_ERROR,
  UPDATE_FAIL_SERVER,
  UPDATE_SUCCESS,
  uuidToBytes,
} from "../../srup/mod.ts";
import { MemoryDeviceStore } from "../../device/mod.ts";
import { serverIdFromPublicKey } from "../../mqtt/mod.ts";
import { TEST_PUBLIC_KEY } from "../_helpers.ts";
import { agentFixture, CountingClock, fetchReturning, sha256 } from "./_fixture.ts";

const FIRMWARE = new TextEncoder().encode("firmware v2\n".repeat(1000));
const URL_A = "https://updates.example/fw-a.bin";

Deno.test("an agent stages a verified download, replies 0x00, then activates and replies 0x10", async (t) => {
  const { fetch, calls } = fetchReturning(() => new Response(FIRMWARE));
  const f = await agentFixture({ fetch });
  const agent = await f.make();
  const digest = await sha256(FIRMWARE);
  const init = await f.initiate({ url: URL_A, digest });

  await t.step("INITIATE: fetch, verify, stage, RESPONSE 0x00", async () => {
    await agent.handleFrame(init.frame);
    assert.deepEqual(calls, [URL_A]);
    assert.equal(f.replies.length, 1);
    const [reply] = f.replies;
    const serverId = await serverIdFromPublicKey(TEST_PUBLIC_KEY);
    assert.equal(reply!.topic, `SRUP/servers/${serverId}/${f.deviceId}`);
    assert.equal(reply!.message.status, UPDATE_SUCCESS);
    assert.deepEqual(reply!.message.token, init.message.token);
    assert.equal(reply!.message.version, 2);
    assert.equal(reply!.message.sequence, 1n);
    assert.deepEqual(agent.status(), {
      id: f.deviceId,
      current: null,
      previous: null,
      staged: toHex(init.message.token),
    });
  });

  await t.step("ACTIVATE: switch, RESPONSE 0x10 with the next sequence id", async () => {
    await agent.handleFrame((await f.activate(init.message.token)).frame);
    const reply = f.replies[1]!.message;
    assert.equal(reply.status, ACTIVATE_SUCCESS);
    assert.equal(reply.sequence, 2n);
    assert.deepEqual(agent.status(), {
      id: f.deviceId,
      current: toHex(digest),
      previous: null,
      staged: null,
    });
    assert.deepEqual((f.store as MemoryDeviceStore).artifact("current"), FIRMWARE);
  });
});

Deno.test("an agent answers each download failure with its status", async (t) => {
  const digest = await sha256(FIRMWARE);
  const cases: [string, () => Response | Promise<Response>, number][] = [
    [
      "connection refused: 0xFD",
      () => Promise.reject(new TypeError("Connection refused")),
      UPDATE_FAIL_SERVER,
    ],
    ["HTTP 500: 0xFC", () => new Response("oops", { status: 500 }), UPDATE_FAIL_HTTP_ERROR],
    ["HTTP 403: 0xFC", () => new Response("no", { status: 403 }), UPDATE_FAIL_HTTP_ERROR],
    ["HTTP 404: 0xFE", () => new Response("gone", { status: 404 }), UPDATE_FAIL_FILE],
    ["HTTP 410: 0xFE", () => new Response("gone", { status: 410 }), UPDATE_FAIL_FILE],
    ["a body cut short: 0xFE", () => new Response(brokenBody()), UPDATE_FAIL_FILE],
    ["a digest mismatch: 0xFF", () => new Response("not the firmware"), UPDATE_FAIL_DIGEST],
  ];
  for (const [name, respond, status] of cases) {
    await t.step(name, async () => {
      const f = await agentFixture(fetchReturning(respond));
      const agent = await f.make();
      await agent.handleFrame((await f.initiate({ url: URL_A, digest })).frame);
      assert.equal(f.replies.length, 1);
      assert.equal(f.replies[0]!.message.status, status);
      assert.equal(agent.status().staged, null);
    });
  }
});

Deno.test("an agent refuses downloads over the size cap with 0xFE, declared or streamed", async (t) => {
  const digest = await sha256(FIRMWARE);
  const limits = { maxBytes: FIRMWARE.length - 1 };
  await t.step("declared by Content-Length: the body is never read", async () => {
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(FIRMWARE);
        controller.close();
      },
    }, { highWaterMark: 0 });
    const headers = { "content-length": String(FIRMWARE.length) };
    const f = await agentFixture({
      ...fetchReturning(() => new Response(body, { headers })),
      limits,
    });
    await (await f.make()).handleFrame((await f.initiate({ url: URL_A, digest })).frame);
    assert.equal(f.replies[0]!.message.status, UPDATE_FAIL_FILE);
    assert.equal(pulled, 0);
  });
  await t.step("without Content-Length: stopped once the cap is passed", async () => {
    const f = await agentFixture({
      ...fetchReturning(() => new Response(chunked(FIRMWARE))),
      limits,
    });
    await (await f.make()).handleFrame((await f.initiate({ url: URL_A, digest })).frame);
    assert.equal(f.replies[0]!.message.status, UPDATE_FAIL_FILE);
  });
});

Deno.test("an agent answers 0xFD when the server does not answer within the timeouts", async (t) => {
  const digest = await sha256(FIRMWARE);
  await t.step("no headers before the connect timeout", async () => {
    const f = await agentFixture({
      ...fetchReturning((_url, init) =>
        new Promise((_, reject) => {
          init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason));
        })
      ),
      limits: { connectTimeoutMs: 1000 },
    });
    const handled = (await f.make()).handleFrame((await f.initiate({ url: URL_A, digest })).frame);
    await untilArmed(f.clock, 2);
    assert.equal(f.replies.length, 0);
    f.clock.increment(1000);
    await handled;
    assert.equal(f.replies[0]!.message.status, UPDATE_FAIL_SERVER);
  });
  await t.step("a body that stalls past the total timeout", async () => {
    const f = await agentFixture({
      ...fetchReturning((_url, init) => new Response(stalled(init!.signal!))),
      limits: { connectTimeoutMs: 1000, totalTimeoutMs: 5000 },
    });
    const handled = (await f.make()).handleFrame((await f.initiate({ url: URL_A, digest })).frame);
    await untilArmed(f.clock, 2);
    await settle();
    f.clock.increment(4999);
    await settle();
    assert.equal(f.replies.length, 0);
    f.clock.increment(1);
    await handled;
    assert.equal(f.replies[0]!.message.status, UPDATE_FAIL_SERVER);
  });
});

Deno.test("an agent fetches plain http only from loopback unless allowed", async (t) => {
  const digest = await sha256(FIRMWARE);
  await t.step("a remote http URL is refused with 0xFE, nothing fetched", async () => {
    const { fetch, calls } = fetchReturning(() => new Response(FIRMWARE));
    const f = await agentFixture({ fetch });
    await (await f.make()).handleFrame(
      (await f.initiate({ url: "http://updates.example/a", digest })).frame,
    );
    assert.equal(f.replies[0]!.message.status, UPDATE_FAIL_FILE);
    assert.deepEqual(calls, []);
  });
  for (const url of ["http://127.0.0.1:8000/a", "http://localhost/a", "http://[::1]:9/a"]) {
    await t.step(`${url} is loopback: fetched`, async () => {
      const f = await agentFixture(fetchReturning(() => new Response(FIRMWARE)));
      await (await f.make()).handleFrame((await f.initiate({ url, digest })).frame);
      assert.equal(f.replies[0]!.message.status, UPDATE_SUCCESS);
    });
  }
  await t.step("with allowHttp, a remote http URL is fetched", async () => {
    const f = await agentFixture({
      ...fetchReturning(() => new Response(FIRMWARE)),
      allowHttp: true,
    });
    await (await f.make()).handleFrame(
      (await f.initiate({ url: "http://updates.example/a", digest })).frame,
    );
    assert.equal(f.replies[0]!.message.status, UPDATE_SUCCESS);
  });
});

Deno.test("an agent drops forged, misaddressed, replayed and malformed frames without a reply", async (t) => {
  const digest = await sha256(FIRMWARE);
  const { fetch, calls } = fetchReturning(() => new Response(FIRMWARE));
  const f = await agentFixture({ fetch });
  const agent = await f.make();

  await t.step("a forged signature", async () => {
    await agent.handleFrame((await f.initiate({ url: URL_A, digest }, randomPrivateKey())).frame);
    assert.equal(agent.rejections.get("bad_signature"), 1);
  });
  await t.step("another device's target", async () => {
    const target = uuidToBytes(crypto.randomUUID());
    await agent.handleFrame((await f.initiate({ url: URL_A, digest, target })).frame);
    assert.equal(agent.rejections.get("wrong_target"), 1);
  });
  await t.step("a malformed frame, counted by its decode error", async () => {
    await agent.handleFrame(new Uint8Array([2, 1, 0]));
    await agent.handleFrame(new Uint8Array([9, 9]));
    assert.equal(agent.rejections.get("truncated"), 1);
    assert.equal(agent.rejections.get("unknown_version"), 1);
  });
  await t.step("a RESPONSE sent to the device", async () => {
    const response = encodeMessage({
      type: "response",
      version: 1,
      token: new Uint8Array(16),
      status: 0,
      signature: new Uint8Array(64),
    });
    await agent.handleFrame(response);
    assert.equal(agent.rejections.get("unexpected_type"), 1);
  });
  assert.deepEqual(calls, []);
  assert.equal(f.replies.length, 0);

  const original = await f.initiate({ url: URL_A, digest });
  await agent.handleFrame(original.frame);
  assert.equal(f.replies.length, 1);
  await t.step("the same INITIATE again: token reused", async () => {
    await agent.handleFrame(original.frame);
    assert.equal(agent.rejections.get("token_reused"), 1);
  });
  await t.step("a new token with a sequence id not above the last", async () => {
    const old = await f.initiate({ url: URL_A, digest, sequence: original.message.sequence });
    await agent.handleFrame(old.frame);
    assert.equal(agent.rejections.get("replay"), 1);
  });
  assert.equal(f.replies.length, 1);
  assert.equal(calls.length, 1);
  assert.equal(agent.rejections.total, 7);
});

Deno.test("an agent drops an ACTIVATE before its RESPONSE, and confirms a repeated one again", async (t) => {
  const digest = await sha256(FIRMWARE);
  const f = await agentFixture(fetchReturning(() => new Response(FIRMWARE)));
  const agent = await f.make();
  const init = await f.initiate({ url: URL_A, digest });

  await t.step("ACTIVATE for a token never staged: dropped, no reply", async () => {
    await agent.handleFrame((await f.activate(init.message.token)).frame);
    assert.equal(agent.rejections.get("unknown_token"), 1);
    assert.equal(f.replies.length, 0);
    assert.equal(agent.status().current, null);
  });
  await agent.handleFrame(init.frame);
  const activate = await f.activate(init.message.token);
  await agent.handleFrame(activate.frame);
  assert.equal(f.replies[1]!.message.status, ACTIVATE_SUCCESS);

  await t.step("the same ACTIVATE redelivered: 0x10 again, no second switch", async () => {
    await agent.handleFrame(activate.frame);
    assert.equal(f.replies[2]!.message.status, ACTIVATE_SUCCESS);
    assert.deepEqual(agent.status(), {
      id: f.deviceId,
      current: toHex(digest),
      previous: null,
      staged: null,
    });
  });
  await t.step("a resend with a new sequence id: 0x10 again", async () => {
    await agent.handleFrame((await f.activate(init.message.token)).frame);
    assert.equal(f.replies[3]!.message.status, ACTIVATE_SUCCESS);
    assert.equal(agent.status().previous, null);
  });
});

Deno.test("an agent never overwrites the previous version when a third update arrives", async () => {
  const bodies = ["one", "two", "three"].map((text) => new TextEncoder().encode(text));
  const f = await agentFixture(fetchReturning((url) => new Response(bodies[Number(url.at(-1))])));
  const agent = await f.make();
  const store = f.store as MemoryDeviceStore;
  const digests = await Promise.all(bodies.map(sha256));
  for (let i = 0; i < 3; i++) {
    const init = await f.initiate({ url: `${URL_A}?${i}`, digest: digests[i]! });
    await agent.handleFrame(init.frame);
    if (i === 2) {
      // Staged but not active: the two kept versions are untouched.
      assert.deepEqual(store.artifact("current"), bodies[1]);
      assert.deepEqual(store.artifact("previous"), bodies[0]);
    }
    await agent.handleFrame((await f.activate(init.message.token)).frame);
  }
  assert.deepEqual(store.artifact("current"), bodies[2]);
  assert.deepEqual(store.artifact("previous"), bodies[1]);
  assert.deepEqual(f.replies.map((r) => r.message.status), [0, 0x10, 0, 0x10, 0, 0x10]);
});

Deno.test("an agent answers a version 1 INITIATE with a version 1 RESPONSE", async () => {
  const digest = await sha256(FIRMWARE);
  const f = await agentFixture(fetchReturning(() => new Response(FIRMWARE)));
  const init = await f.initiate({ url: URL_A, digest, version: 1, sequence: undefined });
  await (await f.make()).handleFrame(init.frame);
  assert.equal(f.replies[0]!.message.version, 1);
  assert.equal(f.replies[0]!.message.sequence, undefined);
  assert.equal(f.replies[0]!.message.status, UPDATE_SUCCESS);
});

Deno.test("an agent restarted on the same store keeps its staged update and replay memory", async () => {
  const digest = await sha256(FIRMWARE);
  const f = await agentFixture(fetchReturning(() => new Response(FIRMWARE)));
  const init = await f.initiate({ url: URL_A, digest });
  await (await f.make()).handleFrame(init.frame);
  const restarted = await f.make();
  await restarted.handleFrame(init.frame);
  assert.equal(restarted.rejections.get("token_reused"), 1);
  await restarted.handleFrame((await f.activate(init.message.token)).frame);
  assert.deepEqual(f.replies.map((r) => [r.message.status, r.message.sequence]), [
    [UPDATE_SUCCESS, 1n],
    [ACTIVATE_SUCCESS, 2n],
  ]);
  assert.equal(restarted.status().current, toHex(digest));
});

/** Lets pending promise callbacks run. */
/**
 * Waits, in real time, until `count` timers were armed on the simulated clock: the agent reaches
 * its fetch only after real asynchronous work (signature checks), however loaded the machine is.
 */
async function untilArmed(clock: CountingClock, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (clock.armed < count) {
    if (Date.now() > deadline) throw new Error(`Only ${clock.armed} of ${count} timers were armed`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
}

function brokenBody(): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(controller) {
      if (sent) return controller.error(new Error("connection reset"));
      sent = true;
      controller.enqueue(FIRMWARE.subarray(0, 100));
    },
  });
}

function chunked(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + 1024));
      offset += 1024;
    },
  });
}

function stalled(signal: AbortSignal): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(new Uint8Array(10));
      signal.addEventListener("abort", () => controller.error(signal.reason));
    },
  });
}

Deno.test("an agent never moves its replay counter for a forged frame: a huge forged sequence id locks nobody out", async (t) => {
  const digest = await sha256(FIRMWARE);
  const f = await agentFixture(fetchReturning(() => new Response(FIRMWARE)));
  const agent = await f.make();
  const forger = randomPrivateKey();
  const huge = 0xffff_ffff_ffff_ffffn;

  await t.step(
    "a forged INITIATE and a forged ACTIVATE with the largest sequence id: dropped",
    async () => {
      await agent.handleFrame(
        (await f.initiate({ url: URL_A, digest, sequence: huge }, forger)).frame,
      );
      const forged = await signMessage({
        type: "activate" as const,
        version: 2 as const,
        sequence: huge,
        token: new Uint8Array(16),
        signature: new Uint8Array(),
      }, forger);
      await agent.handleFrame(encodeMessage(forged));
      assert.equal(agent.rejections.get("bad_signature"), 2);
      assert.equal((await f.store.load()).sequences.size, 0);
    },
  );
  await t.step(
    "the genuine server's next frames, with small sequence ids, are obeyed",
    async () => {
      const init = await f.initiate({ url: URL_A, digest, sequence: 1n });
      await agent.handleFrame(init.frame);
      assert.equal(f.replies.at(-1)!.message.status, UPDATE_SUCCESS);
      await agent.handleFrame((await f.activate(init.message.token, { sequence: 2n })).frame);
      assert.equal(f.replies.at(-1)!.message.status, ACTIVATE_SUCCESS);
      assert.equal(agent.rejections.get("replay"), 0);
    },
  );
});
