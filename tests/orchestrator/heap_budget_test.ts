import assert from "node:assert/strict";
import {
  checkHeapRoom,
  InsufficientHeapError,
  v8HeapUsage,
} from "../../orchestrator/heap_budget.ts";

const MB = 1024 * 1024;

Deno.test("checkHeapRoom() lets a rollout through while its devices fit in the heap left", () => {
  checkHeapRoom(100_000, { limit: 1536 * MB, used: 600 * MB });
  checkHeapRoom(0, { limit: 100 * MB, used: 100 * MB });
});

Deno.test("checkHeapRoom() refuses a rollout too large for the heap left, with the figures", () => {
  assert.throws(
    () => checkHeapRoom(1_000_000, { limit: 1536 * MB, used: 600 * MB }),
    (error: unknown) => {
      assert.ok(error instanceof InsufficientHeapError);
      assert.equal(
        error.message,
        "Cannot create rollout: 1000000 devices need about 1953 MB of heap and 936 MB of the " +
          "1536 MB heap limit is free; start the orchestrator with a larger " +
          "--v8-flags=--max-old-space-size (docs/operations.md)",
      );
      return true;
    },
  );
  // A heap already over its limit reports none free rather than a negative figure.
  assert.throws(
    () => checkHeapRoom(1, { limit: 10 * MB, used: 11 * MB }),
    /and 0 MB of the 10 MB heap limit is free/,
  );
});

Deno.test("v8HeapUsage() reads this isolate's heap limit and use", () => {
  const usage = v8HeapUsage();
  assert.ok(usage.limit > usage.used && usage.used > 0, JSON.stringify(usage));
});
