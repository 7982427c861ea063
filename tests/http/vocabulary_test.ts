import assert from "node:assert/strict";
import { DEVICE_STATES, FINAL_ROLLOUT_STATES, ROLLOUT_STATES } from "../../actors/mod.ts";
import { dashboardApp } from "../../http/dashboard/mod.ts";

Deno.test("the dashboard loads the state vocabulary from the server, not a copy", async () => {
  const response = await dashboardApp().request("/ui/vocabulary.json");
  assert.equal(response.status, 200);
  const vocabulary = await response.json();
  assert.deepEqual(vocabulary.deviceStates, DEVICE_STATES);
  assert.deepEqual(vocabulary.rolloutStates, ROLLOUT_STATES);
  assert.deepEqual(vocabulary.finalRolloutStates, FINAL_ROLLOUT_STATES);
  const script = await (await dashboardApp().request("/ui/app.js")).text();
  assert.match(script, /fetch\("\/ui\/vocabulary\.json"\)/);
  assert.ok(!script.includes(`"timed_out"`), "app.js holds no copy of the device states");
  assert.ok(!script.includes(`["completed", "halted", "cancelled"]`), "nor of the final states");
});
