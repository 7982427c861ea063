import assert from "node:assert/strict";
import { RejectionLog, type RejectReason } from "../../mqtt/mod.ts";
import { SimClock } from "../../sim/sim_clock.ts";
import { recordingLogger } from "./_brokers.ts";

Deno.test("RejectionLog: a 5 s flood of 100,000 rejected frames writes a bounded number of lines and a summary with every count", () => {
  const clock = new SimClock(1_000_000);
  const logger = recordingLogger();
  const log = new RejectionLog({ logger, clock });
  const reasons: RejectReason[] = ["replay", "replay", "bad_signature", "unknown_token", "replay"];
  // 20,000 frames a second for 5 simulated seconds, the reasons interleaved.
  for (let i = 0; i < 100_000; i++) {
    log.rejected(reasons[i % reasons.length]!, { device: "d", n: i });
    if (i % 20 === 19) clock.advance(1);
  }
  const lines = logger.events.filter((e) => e.event === "frame.rejected");
  // The first of each reason, then at most one per reason a second: 3 reasons x 5 seconds.
  assert.ok(lines.length <= 15, `${lines.length} lines`);
  assert.deepEqual(
    new Set(lines.map((e) => e.fields.reason)),
    new Set(["replay", "bad_signature", "unknown_token"]),
  );
  assert.deepEqual(lines.slice(0, 3).map((e) => e.fields), [
    { reason: "replay", device: "d", n: 0 },
    { reason: "bad_signature", device: "d", n: 2 },
    { reason: "unknown_token", device: "d", n: 3 },
  ]);
  assert.equal(logger.events.filter((e) => e.event === "frame.rejected.summary").length, 0);

  clock.run({ until: 1_000_000 + 10_000 });
  const summaries = logger.events.filter((e) => e.event === "frame.rejected.summary");
  assert.equal(summaries.length, 1, "one summary 10 s after the first line held back");
  assert.deepEqual(summaries[0]!.fields, {
    message:
      "100000 frames rejected in the last 10s: replay=60000, bad_signature=20000, unknown_token=20000",
    seconds: 10,
    total: 100_000,
    notLogged: 100_000 - lines.length,
    reasons: { replay: 60_000, bad_signature: 20_000, unknown_token: 20_000 },
  });
  assert.equal(logger.events.length, lines.length + 1);
  assert.equal(clock.pending, 0);
});

Deno.test("RejectionLog: frames a second or more apart are each logged, and need no summary", () => {
  const clock = new SimClock();
  const logger = recordingLogger();
  const log = new RejectionLog({ logger, clock });
  for (let i = 0; i < 30; i++) {
    log.rejected("replay", { n: i });
    clock.advance(1_000);
  }
  clock.run({ until: 100_000 });
  assert.equal(logger.events.length, 30);
  assert.ok(logger.events.every((e) => e.event === "frame.rejected"));
  assert.equal(clock.pending, 0);

  // A later burst: its summary covers that burst only, not the 30 s before it.
  log.rejected("replay", { n: 30 });
  log.rejected("replay", { n: 31 });
  log.flush();
  assert.deepEqual(logger.events.at(-1)!.fields, {
    message: "2 frames rejected in the last 1s: replay=2",
    seconds: 1,
    total: 2,
    notLogged: 1,
    reasons: { replay: 2 },
  });
  assert.equal(clock.pending, 0, "flush() cancels the summary timer");
});
