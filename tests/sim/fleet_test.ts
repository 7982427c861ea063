import assert from "node:assert/strict";
import { deviceClientId, startEmbeddedBroker } from "../../mqtt/mod.ts";
import { parseFaults } from "../../sim/faults.ts";
import { startFleet } from "../../sim/fleet.ts";

Deno.test({
  name: "startFleet() connects each device as its agent would, so presence knows it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const online = new Set<string>();
    const broker = await startEmbeddedBroker({
      port: 0,
      onPresence: (clientId, up) => up ? online.add(clientId) : online.delete(clientId),
    });
    const ids = [crypto.randomUUID(), crypto.randomUUID()];
    const before = Date.now();
    const fleet = await startFleet({
      ids,
      seeds: crypto.getRandomValues(new Uint8Array(64)),
      serverKey: crypto.getRandomValues(new Uint8Array(32)),
      serverId: "0123456789abcdef",
      mqttUrl: broker.url,
      gateway: false,
      faults: parseFaults(""),
      latency: null,
      offline: 0,
      offlineMs: 0,
      crash: 0,
      restartMs: 0,
      seed: 1,
      name: "presence",
    });
    try {
      assert.deepEqual([...online].sort(), ids.map(deviceClientId).sort());
      // The connecting span (bench/connections.ts reads it) lies within startFleet's own call.
      assert.ok(before <= fleet.connecting.from);
      assert.ok(fleet.connecting.from <= fleet.connecting.to);
      assert.ok(fleet.connecting.to <= Date.now());
    } finally {
      await fleet.close();
      await broker.close();
    }
  },
});
