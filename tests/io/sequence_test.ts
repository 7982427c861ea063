import assert from "node:assert/strict";
import { join } from "node:path";
import { createSequenceAllocator, fileSequenceAllocator } from "../../io/sequence.ts";

/** A persisted reservation in memory, recording every write. */
function memoryReservation(start = 0n) {
  const writes: bigint[] = [];
  let stored = start;
  return {
    writes,
    get stored() {
      return stored;
    },
    load: () => Promise.resolve(stored),
    persist(upTo: bigint) {
      writes.push(upTo);
      stored = upTo;
      return Promise.resolve();
    },
  };
}

Deno.test("createSequenceAllocator() persists a block before handing out ids from it", async () => {
  const reservation = memoryReservation();
  const allocator = createSequenceAllocator({ ...reservation, block: 3n });
  assert.equal(await allocator.next(), 1n);
  assert.deepEqual(reservation.writes, [3n]);
  assert.equal(await allocator.next(), 2n);
  assert.equal(await allocator.next(), 3n);
  assert.deepEqual(reservation.writes, [3n]);
  assert.equal(await allocator.next(), 4n);
  assert.deepEqual(reservation.writes, [3n, 6n]);
});

Deno.test("createSequenceAllocator() restarts above the reservation after a crash", async () => {
  const reservation = memoryReservation();
  const first = createSequenceAllocator({ ...reservation, block: 10n });
  await first.next();
  await first.next();
  // The process dies here; a new one loads what was persisted.
  const second = createSequenceAllocator({ ...reservation, block: 10n });
  assert.equal(await second.next(), 11n);
});

Deno.test("createSequenceAllocator() gives concurrent callers distinct increasing ids", async () => {
  const reservation = memoryReservation();
  const allocator = createSequenceAllocator({ ...reservation, block: 4n });
  const ids = await Promise.all(Array.from({ length: 10 }, () => allocator.next()));
  assert.deepEqual(ids, [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]);
  assert.deepEqual(reservation.writes, [4n, 8n, 12n]);
});

Deno.test("createSequenceAllocator() hands out nothing when persisting fails", async () => {
  let fail = true;
  const allocator = createSequenceAllocator({
    load: () => Promise.resolve(5n),
    persist: () => fail ? Promise.reject(new Error("disk full")) : Promise.resolve(),
    block: 2n,
  });
  await assert.rejects(allocator.next(), /disk full/);
  fail = false;
  assert.equal(await allocator.next(), 6n);
});

Deno.test("createSequenceAllocator() stops at the largest u64", async () => {
  const max = 0xffff_ffff_ffff_ffffn;
  const reservation = memoryReservation(max - 1n);
  const allocator = createSequenceAllocator({ ...reservation, block: 1000n });
  assert.equal(await allocator.next(), max);
  assert.deepEqual(reservation.writes, [max]);
  await assert.rejects(allocator.next(), RangeError);
});

Deno.test("createSequenceAllocator() rejects a block below 1", () => {
  assert.throws(
    () => createSequenceAllocator({ ...memoryReservation(), block: 0n }),
    (error) => error instanceof RangeError && /block: 0 is below 1/.test(error.message),
  );
});

Deno.test("fileSequenceAllocator() continues above the file's reservation", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "sequence");
  try {
    await t.step("a missing file starts at 1", async () => {
      const allocator = fileSequenceAllocator(path, { block: 5n });
      assert.equal(await allocator.next(), 1n);
      assert.equal(await allocator.next(), 2n);
      assert.equal(await Deno.readTextFile(path), "5\n");
    });
    await t.step("a restart continues above the reservation", async () => {
      assert.equal(await fileSequenceAllocator(path, { block: 5n }).next(), 6n);
    });
    await t.step("a corrupt file is refused with its content", async () => {
      await Deno.writeTextFile(path, "garbage");
      await assert.rejects(
        fileSequenceAllocator(path).next(),
        /Cannot read sequence reservation: ".*sequence" holds "garbage"/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
