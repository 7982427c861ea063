import assert from "node:assert/strict";
import { createActor } from "xstate";
import { deviceMachine } from "../../actors/mod.ts";
import {
  UPDATE_REFUSED_EXPIRED,
  UPDATE_REFUSED_HARDWARE,
  UPDATE_REFUSED_ROLLBACK,
  UPDATE_REFUSED_UNSIGNED,
} from "../../srup/mod.ts";
import { harness } from "./_harness.ts";

function device(on: ("fc" | "fd" | "fe" | "timeout")[], attempts = 3) {
  const actor = createActor(deviceMachine, { input: { id: "d1", retry: { attempts, on } } })
    .start();
  actor.send({ type: "device.initiate", token: new Uint8Array(16).fill(1) });
  return actor;
}

Deno.test("device machine: a release refusal (0xFB, 0xFA, 0xF8) fails the device, never retried", () => {
  for (
    const status of [UPDATE_REFUSED_UNSIGNED, UPDATE_REFUSED_ROLLBACK, UPDATE_REFUSED_HARDWARE]
  ) {
    const actor = device(["fc", "fd", "fe", "timeout"]);
    actor.send({ type: "device.response", status });
    assert.equal(actor.getSnapshot().value, "failed", `0x${status.toString(16)}`);
  }
});

Deno.test("device machine: an expired INITIATE (0xF9) is retried as a timeout is", () => {
  const retried = device(["timeout"]);
  retried.send({ type: "device.response", status: UPDATE_REFUSED_EXPIRED });
  assert.equal(retried.getSnapshot().value, "retrying");
  const notRetried = device(["fc", "fd", "fe"]);
  notRetried.send({ type: "device.response", status: UPDATE_REFUSED_EXPIRED });
  assert.equal(notRetried.getSnapshot().value, "failed");
  const lastAttempt = device(["timeout"], 1);
  lastAttempt.send({ type: "device.response", status: UPDATE_REFUSED_EXPIRED });
  assert.equal(lastAttempt.getSnapshot().value, "failed");
});

Deno.test("downgrade refusals count toward the failure threshold and pause, not halt", () => {
  const h = harness({
    policy: `stages: [{percent: 100}]
concurrency: 1
failure: { maxPercent: 20, minDevices: 5, action: pause }`,
    devices: 20,
    answer: (send) =>
      send.kind === "activate"
        ? { status: 0x10 }
        : { status: send.index === 1 || send.index === 3 ? UPDATE_REFUSED_ROLLBACK : 0x00 },
  }).run();
  assert.equal(h.engine.state, "paused");
  assert.equal(h.engine.summary().pauseReason?.kind, "failure_threshold");
  assert.equal(h.engine.summary().haltReason, null);
  // One INITIATE each: a refusal is not retried.
  assert.equal(h.sendsOf("initiate").filter((s) => s.index === 1).length, 1);
});
