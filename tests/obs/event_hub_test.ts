import assert from "node:assert/strict";
import { EventHub, type StreamedEvent } from "../../obs/event_hub.ts";

function event(id: number, rolloutId = "r1"): StreamedEvent {
  return { id, type: "device.activated", rolloutId, deviceId: null, at: "", data: null };
}

Deno.test("EventHub delivers published events to each subscriber that accepts them", async () => {
  const hub = new EventHub();
  const all = hub.subscribe();
  const onlyR2 = hub.subscribe((e) => e.rolloutId === "r2");
  hub.publish(event(1, "r1"));
  hub.publish(event(2, "r2"));
  hub.closeAll();
  assert.deepEqual((await Array.fromAsync(all)).map((e) => e.id), [1, 2]);
  assert.deepEqual((await Array.fromAsync(onlyR2)).map((e) => e.id), [2]);
  assert.equal(hub.size, 0);
});

Deno.test("EventHub cuts off a subscriber that falls more than maxPending behind", async () => {
  const hub = new EventHub({ maxPending: 3 });
  const slow = hub.subscribe();
  for (let id = 1; id <= 5; id++) hub.publish(event(id));
  assert.match(slow.closedReason ?? "", /more than 3 events pending/);
  assert.equal(hub.size, 0);
  assert.deepEqual((await Array.fromAsync(slow)).map((e) => e.id), [1, 2, 3]);
});
