import assert from "node:assert/strict";
import { HAPPY, type Harness, harness } from "./_harness.ts";

/** Each send's recording event (same device, token, kind) and where it came. */
function assertRecordedBeforeSent(h: Harness): void {
  assert.ok(h.sends.length > 0);
  for (const send of h.sends) {
    const type = send.kind === "initiate" ? "device.initiated" : "device.activating";
    const recorded = h.eventsOf(type).filter((event) =>
      event.device === send.device && event.token === send.token && event.seq < send.seq
    );
    assert.ok(
      recorded.length > 0,
      `${send.kind} #${send.seq} to ${send.device} came before its ${type} event`,
    );
  }
}

// orchestrator/rollout_runner.ts sends once the writes queued before the port call are committed:
// that covers the device's row only because the engine emits the event before calling the port.
Deno.test("every INITIATE and ACTIVATE comes after the event that records its token", async (t) => {
  await t.step("immediate activation, with retries", () => {
    const h = harness({
      policy: `stages: [{percent: 50}, {percent: 100}]
retry: { attempts: 3, backoff: 30s, maxBackoff: 10m, on: [fd, timeout] }`,
      devices: 6,
      answer: (send) =>
        send.index % 2 === 0 && send.kind === "initiate" && send.attempt === 1
          ? { status: 0xfd }
          : HAPPY(send),
    }).run();
    assert.equal(h.engine.state, "completed");
    assert.ok(h.sendsOf("initiate").some((send) => send.attempt === 2));
    assertRecordedBeforeSent(h);
  });
  await t.step("two-phase activation", () => {
    const h = harness({
      policy: "stages: [{percent: 50}, {percent: 100}]\nactivation: stage",
      devices: 4,
      answer: HAPPY,
    }).run();
    assert.equal(h.engine.state, "completed");
    assert.equal(h.sendsOf("activate").length, 4);
    assertRecordedBeforeSent(h);
  });
});
