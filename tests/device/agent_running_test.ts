import assert from "node:assert/strict";
import { ACTIVATE_SUCCESS, toHex, UPDATE_SUCCESS } from "../../srup/mod.ts";
import type { MemoryDeviceStore } from "../../device/mod.ts";
import { agentFixture, fetchReturning, sha256 } from "./_fixture.ts";

const ENCODER = new TextEncoder();
const OLD = ENCODER.encode("firmware v1\n".repeat(500));
const NEW = ENCODER.encode("firmware v2\n".repeat(500));

Deno.test("told to stage what it already runs, an agent answers 0x00 and keeps its slots", async (t) => {
  const { fetch, calls } = fetchReturning((url) => new Response(url.endsWith("v1") ? OLD : NEW));
  const f = await agentFixture({ fetch });
  const agent = await f.make();
  const store = f.store as MemoryDeviceStore;
  const [oldDigest, newDigest] = [await sha256(OLD), await sha256(NEW)];
  for (
    const [url, digest] of [["https://u.example/v1", oldDigest], [
      "https://u.example/v2",
      newDigest,
    ]] as const
  ) {
    const init = await f.initiate({ url, digest });
    await agent.handleFrame(init.frame);
    await agent.handleFrame((await f.activate(init.message.token)).frame);
  }
  assert.deepEqual(agent.status(), {
    id: f.deviceId,
    current: toHex(newDigest),
    previous: toHex(oldDigest),
    staged: null,
  });
  const fetched = calls.length;

  const again = await f.initiate({ url: "https://u.example/v2-again", digest: newDigest });
  await t.step("INITIATE of the running digest: 0x00, nothing fetched", async () => {
    await agent.handleFrame(again.frame);
    assert.equal(f.replies.at(-1)!.message.status, UPDATE_SUCCESS);
    assert.equal(calls.length, fetched, "nothing fetched");
    assert.equal(agent.status().staged, toHex(again.message.token));
  });

  await t.step("ACTIVATE: 0x10, the rollback copy kept", async () => {
    await agent.handleFrame((await f.activate(again.message.token)).frame);
    assert.equal(f.replies.at(-1)!.message.status, ACTIVATE_SUCCESS);
    assert.deepEqual(agent.status(), {
      id: f.deviceId,
      current: toHex(newDigest),
      previous: toHex(oldDigest),
      staged: null,
    });
    assert.deepEqual(store.artifact("current"), NEW);
    assert.deepEqual(store.artifact("previous"), OLD);
  });

  await t.step("a resent ACTIVATE confirms again and changes nothing", async () => {
    await agent.handleFrame((await f.activate(again.message.token)).frame);
    assert.equal(f.replies.at(-1)!.message.status, ACTIVATE_SUCCESS);
    assert.equal(agent.status().previous, toHex(oldDigest));
  });
});
