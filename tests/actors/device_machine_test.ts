import assert from "node:assert/strict";
import { createActor } from "xstate";
import { deviceMachine, type DeviceState } from "../../actors/mod.ts";

function device(
  options: { attempts?: number; on?: ("fc" | "fd" | "fe" | "timeout")[]; activateNow?: boolean } =
    {},
) {
  const log: string[] = [];
  const logic = deviceMachine.provide({
    actions: {
      sendInitiate: ({ context }) => log.push(`INITIATE ${context.attempt} ${context.token}`),
      sendActivate: ({ context }) => log.push(`ACTIVATE ${context.token}`),
      report: (_, { state }: { state: DeviceState }) => log.push(state),
    },
    guards: { activateNow: () => options.activateNow ?? false },
  });
  const actor = createActor(logic, {
    input: {
      id: "d1",
      retry: { attempts: options.attempts ?? 3, on: options.on ?? ["fc", "fd", "fe", "timeout"] },
    },
  }).start();
  return { actor, log };
}

const token = (byte: number) => new Uint8Array(16).fill(byte);

Deno.test("device machine: idle → initiated → received → activating → activated", () => {
  const { actor, log } = device();
  assert.equal(actor.getSnapshot().value, "idle");
  actor.send({ type: "device.initiate", token: token(1) });
  actor.send({ type: "device.response", status: 0x00 });
  assert.equal(actor.getSnapshot().value, "received", "waits for device.activate");
  actor.send({ type: "device.activate" });
  actor.send({ type: "device.response", status: 0x10 });
  assert.equal(actor.getSnapshot().status, "done");
  const hex = "01".repeat(16);
  assert.deepEqual(log, [
    "initiated",
    `INITIATE 1 ${hex}`,
    "received",
    "activating",
    `ACTIVATE ${hex}`,
    "activated",
  ]);
});

Deno.test("device machine: activateNow skips the wait in received", () => {
  const { actor } = device({ activateNow: true });
  actor.send({ type: "device.initiate", token: token(1) });
  actor.send({ type: "device.response", status: 0x00 });
  assert.equal(actor.getSnapshot().value, "activating");
});

Deno.test("device machine: transient statuses retry until attempts run out", () => {
  const { actor, log } = device({ attempts: 2 });
  actor.send({ type: "device.initiate", token: token(1) });
  actor.send({ type: "device.response", status: 0xfd });
  assert.equal(actor.getSnapshot().value, "retrying");
  actor.send({ type: "device.initiate", token: token(2) });
  assert.equal(actor.getSnapshot().context.attempt, 2);
  actor.send({ type: "device.response", status: 0xfc });
  assert.equal(actor.getSnapshot().value, "failed");
  assert.deepEqual(log.filter((l) => !l.startsWith("INITIATE")), [
    "initiated",
    "retrying",
    "initiated",
    "failed",
  ]);
});

Deno.test("device machine: 0xFF fails the device from any open state", () => {
  for (const steps of [[], ["received"], ["retrying"]] as const) {
    const { actor } = device();
    actor.send({ type: "device.initiate", token: token(1) });
    if (steps[0] === "received") actor.send({ type: "device.response", status: 0x00 });
    if (steps[0] === "retrying") actor.send({ type: "device.response", status: 0xfe });
    actor.send({ type: "device.response", status: 0xff });
    assert.equal(actor.getSnapshot().value, "failed", `from ${steps[0] ?? "initiated"}`);
  }
});

Deno.test("device machine: a timeout passes through timed_out to retrying or failed", () => {
  const retried = device();
  retried.actor.send({ type: "device.initiate", token: token(1) });
  retried.actor.send({ type: "device.timeout" });
  assert.equal(retried.actor.getSnapshot().value, "retrying");
  assert.deepEqual(retried.log.slice(-2), ["timed_out", "retrying"]);
  const failed = device({ on: ["fd"] });
  failed.actor.send({ type: "device.initiate", token: token(1) });
  failed.actor.send({ type: "device.timeout" });
  assert.equal(failed.actor.getSnapshot().value, "failed");
});

Deno.test("device machine: 0x1F fails an activation; cancel ends any open state", () => {
  const { actor } = device({ activateNow: true });
  actor.send({ type: "device.initiate", token: token(1) });
  actor.send({ type: "device.response", status: 0x00 });
  actor.send({ type: "device.response", status: 0x1f });
  assert.equal(actor.getSnapshot().value, "failed");
  const other = device();
  other.actor.send({ type: "device.initiate", token: token(1) });
  other.actor.send({ type: "device.cancel" });
  assert.equal(other.actor.getSnapshot().value, "cancelled");
});

Deno.test("device machine: statuses a state does not expect change nothing", () => {
  const { actor, log } = device();
  actor.send({ type: "device.initiate", token: token(1) });
  const before = log.length;
  for (const status of [0x10, 0x1f, 0x42]) actor.send({ type: "device.response", status });
  assert.equal(actor.getSnapshot().value, "initiated");
  assert.equal(log.length, before);
});
