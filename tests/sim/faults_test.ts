import assert from "node:assert/strict";
import {
  activateOutcome,
  initiateOutcome,
  latency,
  parseFaults,
  parseLatency,
} from "../../sim/mod.ts";

Deno.test("parseFaults() reads the mix and rejects unknown keys and bad numbers", () => {
  assert.deepEqual(parseFaults("fc=0.01,fd=0.02,fe=0.01,ff=0,timeout=0.01"), {
    fc: 0.01,
    fd: 0.02,
    fe: 0.01,
    ff: 0,
    timeout: 0.01,
  });
  assert.deepEqual(parseFaults(""), { fc: 0, fd: 0, fe: 0, ff: 0, timeout: 0 });
  assert.throws(() => parseFaults("fx=0.1"), /Invalid fault "fx=0.1": use key=probability/);
  assert.throws(() => parseFaults("fc=2"), /probability must be between 0 and 1/);
  assert.throws(() => parseFaults("fc="), /probability must be between 0 and 1/);
  assert.throws(() => parseFaults("fc=0.6,fd=0.6"), /sum to 1.2/);
});

Deno.test("parseLatency() reads a range or one fixed duration", () => {
  assert.deepEqual(parseLatency("200ms..5s"), { min: 200, max: 5_000 });
  assert.deepEqual(parseLatency("1s"), { min: 1_000, max: 1_000 });
  assert.throws(() => parseLatency("5s..1s"), /maximum is below the minimum/);
  assert.throws(() => parseLatency("1s..2s..3s"), RangeError);
  assert.throws(() => parseLatency("fast"), /Invalid duration "fast"/);
});

Deno.test("initiateOutcome() splits the unit interval by the mix", () => {
  const mix = parseFaults("ff=0.1,fc=0.1,fd=0.1,fe=0.1,timeout=0.1");
  assert.equal(initiateOutcome(mix, 0.05), 0xff);
  assert.equal(initiateOutcome(mix, 0.15), 0xfc);
  assert.equal(initiateOutcome(mix, 0.25), 0xfd);
  assert.equal(initiateOutcome(mix, 0.35), 0xfe);
  assert.equal(initiateOutcome(mix, 0.45), null);
  assert.equal(initiateOutcome(mix, 0.55), 0x00);
  assert.equal(activateOutcome(mix, 0.05), null);
  assert.equal(activateOutcome(mix, 0.5), 0x10);
  assert.equal(latency({ min: 200, max: 5_000 }, 0), 200);
  assert.equal(latency({ min: 200, max: 5_000 }, 0.9999999), 5_000);
});
