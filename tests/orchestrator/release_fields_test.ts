import assert from "node:assert/strict";
import type { GroupCommitWriter } from "../../db/mod.ts";
import type { InitiateFields, ServerLink } from "../../mqtt/mod.ts";
import { RolloutRunner } from "../../orchestrator/rollout_runner.ts";
import { parsePolicy } from "../../policies/mod.ts";
import { SimClock } from "../../sim/mod.ts";

const V3 = "00000000-0000-4000-8000-000000000001";
const V2 = "00000000-0000-4000-8000-000000000002";
const MANIFEST = new Uint8Array([1, 2, 3]);

/** A runner on a simulated clock whose link records every INITIATE's fields. */
function runner(manifest: Uint8Array | undefined) {
  const clock = new SimClock(Date.UTC(2026, 0, 1));
  const sent: { device: string; fields: InitiateFields; at: number }[] = [];
  const link = {
    sendInitiate(device: string, fields: InitiateFields) {
      sent.push({ device, fields, at: clock.now() });
      return Promise.resolve();
    },
    sendActivate: () => Promise.resolve(),
    timedOut: () => false,
  } as unknown as ServerLink;
  const writer = { enqueue: () => Promise.resolve() } as unknown as GroupCommitWriter;
  const policy = parsePolicy(`name: t
stages: [{percent: 100}]
retry: { attempts: 2, backoff: 1s, maxBackoff: 1s, on: [timeout] }
timeouts: { response: 1m }`).policy;
  const run = new RolloutRunner({
    id: "00000000-0000-7000-8000-000000000000",
    policy,
    devices: [V3, V2],
    artifact: { url: "https://cdn.example/fw.bin", digest: "ab".repeat(32), manifest },
    frameVersion: (device) => device === V3 ? 3 : 2,
    writer,
    link,
    clock,
    log: () => {},
  });
  return { run, clock, sent };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("a runner sends the manifest and a not-after to version 3 devices only, fresh on each retry", async () => {
  const { run, clock, sent } = runner(MANIFEST);
  run.start();
  await settle();
  const first = sent.find((s) => s.device === V3)!;
  assert.deepEqual(first.fields.manifest, MANIFEST);
  assert.equal(first.fields.notAfter, BigInt(first.at + 60_000), "send time + timeouts.response");
  const old = sent.find((s) => s.device === V2)!;
  assert.equal(old.fields.manifest, undefined, "a version 2 device gets version 2");
  assert.equal(old.fields.notAfter, undefined);

  clock.advance(60_000); // the response timeout: both retry after the backoff
  clock.advance(1_000);
  await settle();
  const retries = sent.filter((s) => s.device === V3);
  assert.equal(retries.length, 2);
  const retry = retries[1]!;
  assert.notDeepEqual(retry.fields.token, first.fields.token);
  assert.ok(retry.fields.notAfter! > first.fields.notAfter!, "the retry's not-after is fresh");
  assert.equal(retry.fields.notAfter, BigInt(retry.at + 60_000));
  await run.stop();
});

Deno.test("a runner without a manifest sends version 2 fields to every device", async () => {
  const { run, sent } = runner(undefined);
  run.start();
  await settle();
  assert.equal(sent.length, 2);
  assert.ok(sent.every((s) => s.fields.manifest === undefined && s.fields.notAfter === undefined));
  await run.stop();
});
