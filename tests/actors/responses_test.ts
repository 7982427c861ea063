import assert from "node:assert/strict";
import { harness } from "./_harness.ts";

const POLICY = "stages: [{percent: 100}]\nconcurrency: 2\nretry: { attempts: 3, backoff: 1s }";

Deno.test("responses for stale tokens, unknown devices and unexpected statuses are ignored and counted", async (t) => {
  const h = harness({ policy: POLICY, devices: 4 });
  h.engine.start();
  const first = h.token(0)!;
  await t.step("a stale token", () => {
    h.respond(0, 0xfd);
    h.clock.run({ until: 1_000 });
    assert.equal(h.sendsOf("initiate", 0).length, 2);
    assert.equal(h.engine.response(h.ids[0]!, first, 0x00), "stale_token");
    assert.equal(h.engine.summary().counts.received, 0);
  });
  await t.step("an unknown device and a device not started", () => {
    assert.equal(h.engine.response("not-a-device", first, 0x00), "not_in_flight");
    assert.equal(h.engine.response(h.ids[3]!, first, 0x00), "not_in_flight");
  });
  await t.step("a status the state does not expect, and an unknown status byte", () => {
    assert.equal(h.respond(1, 0x10), "unexpected", "0x10 before any ACTIVATE");
    assert.equal(h.respond(1, 0x42), "unexpected");
    assert.equal(h.engine.summary().counts.initiated, 2);
  });
  await t.step("the counts", () => {
    assert.deepEqual(h.engine.summary().ignored, { staleToken: 1, notInFlight: 2, unexpected: 2 });
  });
  await t.step("a duplicate 0x00 after the ACTIVATE went out is unexpected", () => {
    assert.equal(h.respond(1, 0x00), "accepted");
    assert.equal(h.sendsOf("activate", 1).length, 1);
    assert.equal(h.respond(1, 0x00), "unexpected");
    assert.equal(h.sendsOf("activate", 1).length, 1);
  });
});

Deno.test("shouldSend() answers for the current token of a device awaiting an answer", () => {
  const h = harness({ policy: POLICY, devices: 4 });
  h.engine.start();
  const token = h.token(0)!;
  assert.equal(h.engine.shouldSend(h.ids[0]!, token), true);
  assert.equal(h.engine.shouldSend(h.ids[0]!, new Uint8Array(16)), false, "another token");
  assert.equal(h.engine.shouldSend(h.ids[3]!, token), false, "a device not in flight");
  h.engine.pause();
  assert.equal(h.engine.shouldSend(h.ids[0]!, token), true, "a pause keeps sends already made");
  h.engine.cancel();
  assert.equal(h.engine.shouldSend(h.ids[0]!, token), false);
});

Deno.test("device events carry token, attempt and status to rebuild rows from", () => {
  const h = harness({ policy: POLICY, devices: 1 });
  h.engine.start();
  h.respond(0, 0x00);
  h.respond(0, 0x10);
  const token = h.token(0)!.toHex();
  const id = h.ids[0]!;
  const device = h.events.filter((e) => "device" in e).map(({ seq: _, ...e }) => e);
  assert.deepEqual(device, [
    {
      type: "device.initiated",
      rollout: "r1",
      at: 0,
      device: id,
      stage: 0,
      token,
      attempt: 1,
      deadline: 600_000,
    },
    {
      type: "device.received",
      rollout: "r1",
      at: 0,
      device: id,
      stage: 0,
      token,
      attempt: 1,
      status: 0,
    },
    {
      type: "device.activating",
      rollout: "r1",
      at: 0,
      device: id,
      stage: 0,
      token,
      attempt: 1,
      deadline: 300_000,
    },
    {
      type: "device.activated",
      rollout: "r1",
      at: 0,
      device: id,
      stage: 0,
      token,
      attempt: 1,
      status: 0x10,
    },
  ]);
  assert.doesNotThrow(() => JSON.stringify(h.events));
});

Deno.test("issued() knows the tokens a rollout gave each device, and no other", async (t) => {
  const h = harness({ policy: POLICY, devices: 4 });
  h.engine.start();
  const first = h.token(0)!;
  await t.step("a device in flight: its token, and earlier attempts' after a retry", () => {
    assert.equal(h.engine.issued(h.ids[0]!, 0, first), true);
    h.respond(0, 0xfd);
    h.clock.run({ until: 1_000 });
    assert.equal(h.engine.issued(h.ids[0]!, 0, h.token(0)!), true);
    assert.equal(h.engine.issued(h.ids[0]!, 0, first), true, "the first attempt's");
  });
  await t.step("tokens never issued: all zeros, all ones, another device's", () => {
    for (const token of [new Uint8Array(16), new Uint8Array(16).fill(0xff), h.token(1)!]) {
      assert.equal(h.engine.issued(h.ids[0]!, 0, token), false);
    }
  });
  await t.step("a device not started has none, not even the zero token", () => {
    assert.equal(h.engine.issued(h.ids[3]!, 3, new Uint8Array(16)), false);
  });
  await t.step("a finished device keeps its last token", () => {
    h.respond(1, 0x00);
    h.respond(1, 0x10);
    assert.equal(h.engine.summary().counts.activated, 1);
    assert.equal(h.engine.issued(h.ids[1]!, 1, h.token(1)!), true);
  });
});
