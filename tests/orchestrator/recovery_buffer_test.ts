import assert from "node:assert/strict";
import type { Db, GroupCommitWriter } from "../../db/mod.ts";
import { Orchestrator } from "../../orchestrator/orchestrator.ts";
import type { StoredSequenceTracker } from "../../orchestrator/sequence_tracker.ts";
import type { ResponseMessage } from "../../srup/mod.ts";

function response(status: number): ResponseMessage {
  return { type: "response", token: new Uint8Array(16), status } as unknown as ResponseMessage;
}

Deno.test("RESPONSEs held during recovery are bounded; the rest are counted and logged once", () => {
  const lines: string[] = [];
  // Nothing is stored before recovery: the buffer is all this test reaches.
  const orchestrator = new Orchestrator({
    db: {} as Db,
    writer: {} as GroupCommitWriter,
    tracker: {} as StoredSequenceTracker,
    log: (line) => lines.push(line),
    maxEarlyResponses: 3,
  });
  for (let i = 0; i < 10; i++) orchestrator.handleResponse(`device-${i}`, response(0));
  assert.equal(orchestrator.earlyDropped, 7);
  assert.deepEqual(lines, [
    "response from device-3 dropped: 3 responses already wait for recovery",
  ]);
});
