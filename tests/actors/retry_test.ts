import assert from "node:assert/strict";
import { backoffDelay } from "../../actors/mod.ts";
import { HAPPY, harness } from "./_harness.ts";

const RETRY = `stages: [{percent: 100}]
retry: { attempts: 3, backoff: 30s, maxBackoff: 10m }
timeouts: { response: 10m, activation: 5m }`;

Deno.test("a transient 0xFD recovers on retry with a new token", () => {
  const h = harness({
    policy: RETRY,
    devices: 3,
    answer: (send) =>
      send.index === 1 && send.kind === "initiate" && send.attempt === 1
        ? { status: 0xfd }
        : HAPPY(send),
  }).run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().activated, 3);
  const initiates = h.sendsOf("initiate", 1);
  assert.deepEqual(initiates.map((s) => s.attempt), [1, 2]);
  assert.notEqual(initiates[0]!.token, initiates[1]!.token, "each retry has a new token");
  const retrying = h.eventsOf("device.retrying")[0]!;
  assert.equal(retrying.reason, "UPDATE_FAIL_SERVER");
  assert.equal(retrying.status, 0xfd);
  const wait = initiates[1]!.at - (initiates[0]!.at + 1_000);
  assert.ok(wait >= 15_000 && wait <= 30_000, `backoff ${wait} ms is within [15s, 30s]`);
  assert.equal(retrying.deadline, initiates[1]!.at);
  // The ACTIVATE carries the token whose 0x00 was received: the second one.
  assert.equal(h.sendsOf("activate", 1)[0]!.token, initiates[1]!.token);
  assert.deepEqual(h.engine.summary().attempts, { "1": 2, "2": 1 });
});

Deno.test("retries stop after the policy's attempts and the device fails", () => {
  const h = harness({
    policy: RETRY,
    devices: 1,
    answer: (send) => send.kind === "initiate" ? { status: 0xfc } : HAPPY(send),
  }).run();
  assert.deepEqual(h.sendsOf("initiate").map((s) => s.attempt), [1, 2, 3]);
  const failed = h.eventsOf("device.failed");
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.reason, "UPDATE_FAIL_HTTP_ERROR");
  assert.equal(failed[0]!.attempt, 3);
  assert.equal(h.engine.summary().failed, 1);
  // Backoff doubles: the second wait is within [30s, 60s].
  const [a, b, c] = h.sendsOf("initiate").map((s) => s.at);
  assert.ok(b! - a! - 1_000 >= 15_000 && b! - a! - 1_000 <= 30_000);
  assert.ok(c! - b! - 1_000 >= 30_000 && c! - b! - 1_000 <= 60_000);
});

Deno.test("statuses not listed in retry.on fail at once", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nretry: { attempts: 5, on: [fc] }",
    devices: 1,
    answer: (send) => send.kind === "initiate" ? { status: 0xfe } : HAPPY(send),
  }).run();
  assert.equal(h.sendsOf("initiate").length, 1);
  assert.equal(h.eventsOf("device.failed")[0]!.reason, "UPDATE_FAIL_FILE");
});

Deno.test("backoffDelay() doubles, caps at maxBackoff, and jitters within the upper half", () => {
  const rule = { backoff: 1_000, maxBackoff: 5_000 };
  assert.equal(backoffDelay(rule, 1, () => 0), 500);
  assert.equal(backoffDelay(rule, 1, () => 0.999999), 1_000);
  assert.equal(backoffDelay(rule, 2, () => 0), 1_000);
  assert.equal(backoffDelay(rule, 3, () => 0.5), 3_000);
  assert.equal(backoffDelay(rule, 10, () => 0.999999), 5_000);
  assert.equal(backoffDelay(rule, 10, () => 0), 2_500);
});

Deno.test("a missing RESPONSE times out and is retried", () => {
  const h = harness({
    policy: RETRY,
    devices: 1,
    answer: (send) => send.kind === "initiate" && send.attempt === 1 ? null : HAPPY(send),
  }).run();
  assert.equal(h.engine.state, "completed");
  const timedOut = h.eventsOf("device.timed_out");
  assert.equal(timedOut.length, 1);
  assert.equal(timedOut[0]!.missing, "response");
  assert.equal(timedOut[0]!.at, 600_000, "the response timeout is 10m");
  assert.deepEqual(h.sendsOf("initiate").map((s) => s.attempt), [1, 2]);
});

Deno.test("a missing activation confirmation times out and is retried with the same token, not a new INITIATE", () => {
  let activates = 0;
  const h = harness({
    policy: RETRY,
    devices: 1,
    answer: (send) => send.kind === "activate" && ++activates === 1 ? null : HAPPY(send),
  }).run();
  assert.equal(h.engine.state, "completed");
  const timedOut = h.eventsOf("device.timed_out");
  assert.equal(timedOut.length, 1);
  assert.equal(timedOut[0]!.missing, "activation");
  const firstActivate = h.sendsOf("activate")[0]!;
  assert.equal(timedOut[0]!.at, firstActivate.at + 300_000, "the activation timeout is 5m");
  assert.deepEqual(h.sendsOf("initiate").map((s) => s.attempt), [1]);
  const sent = h.sendsOf("activate");
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1]!.token, sent[0]!.token);
  assert.equal(sent[1]!.at, timedOut[0]!.at);
});

Deno.test("an activation never confirmed fails after retry.attempts ACTIVATEs, with no new INITIATE", () => {
  const h = harness({
    policy: RETRY,
    devices: 1,
    answer: (send) => send.kind === "activate" ? null : HAPPY(send),
  }).run();
  assert.equal(h.sendsOf("initiate").length, 1);
  assert.equal(h.sendsOf("activate").length, 3);
  assert.equal(h.eventsOf("device.timed_out").length, 3);
  assert.equal(h.eventsOf("device.failed")[0]!.reason, "timeout");
});

Deno.test("timeouts are not retried when retry.on leaves them out", () => {
  const h = harness({
    policy: "stages: [{percent: 100}]\nretry: { attempts: 3, on: [fd] }",
    devices: 1,
    answer: () => null,
  }).run();
  assert.equal(h.sendsOf("initiate").length, 1);
  assert.equal(h.eventsOf("device.failed")[0]!.reason, "timeout");
});
