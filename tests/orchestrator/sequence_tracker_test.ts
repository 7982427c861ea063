import assert from "node:assert/strict";
import {
  type Database,
  getDevice,
  GroupCommitWriter,
  listEvents,
  openDatabase,
  registerDevice,
} from "../../db/mod.ts";
import { StoredSequenceTracker } from "../../orchestrator/sequence_tracker.ts";

const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

// One database for every step: opening PGlite costs seconds.
let shared: Database | undefined;

async function withDevice(
  fn: (database: Database, id: string, writer: GroupCommitWriter) => Promise<void>,
): Promise<void> {
  const database = shared!;
  const writer = new GroupCommitWriter(database.db, { onError: () => {} });
  try {
    const id = crypto.randomUUID();
    await registerDevice(database.db, { id, publicKey: KEY });
    await fn(database, id, writer);
  } finally {
    await writer.close();
  }
}

async function stored(database: Database, id: string): Promise<bigint | null> {
  return (await getDevice(database.db, id))!.lastSequence;
}

function event(id: string) {
  return (previous: bigint | null) => ({
    deviceId: id,
    type: "device.sequence_reset",
    actor: "test",
    data: { previous: previous?.toString() ?? null },
  });
}

Deno.test("sequence floor resets", async (t) => {
  shared = await openDatabase({ memory: true });
  try {
    await t.step(
      "StoredSequenceTracker.reset() takes effect once durable, and records its event",
      async () => {
        await withDevice(async (database, id, writer) => {
          const tracker = new StoredSequenceTracker(database.db, writer);
          assert.equal(await tracker.advance(id, (1n << 64n) - 1n), true);
          assert.equal(await tracker.advance(id, 5n), false);
          assert.equal(await tracker.reset(id, null, event(id)), (1n << 64n) - 1n);
          assert.equal(await stored(database, id), null);
          assert.equal(await tracker.last(id), null);
          assert.equal(await tracker.advance(id, 5n), true);
          await writer.flush();
          assert.equal(await stored(database, id), 5n);
          const events = await listEvents(database.db, { deviceId: id });
          assert.deepEqual(events.map((e) => [e.type, e.data]), [
            ["device.sequence_reset", { previous: "18446744073709551615" }],
          ]);
        });
      },
    );

    await t.step(
      "StoredSequenceTracker.reset() racing a RESPONSE: memory and database agree",
      async (t) => {
        await t.step(
          "a RESPONSE above the old floor accepted while the reset commits is kept",
          async () => {
            await withDevice(async (database, id, writer) => {
              const tracker = new StoredSequenceTracker(database.db, writer);
              await tracker.advance(id, 1000n);
              const reset = tracker.reset(id, null, event(id));
              // Checked against the old floor until the reset is durable.
              assert.equal(await tracker.advance(id, 999n), false);
              assert.equal(await tracker.advance(id, 2000n), true);
              assert.equal(await reset, 1000n);
              assert.equal(await tracker.last(id), 2000n);
              await writer.flush();
              assert.equal(await stored(database, id), 2000n);
              assert.equal(await tracker.advance(id, 2000n), false);
            });
          },
        );
        await t.step(
          "an id accepted just before the reset is overwritten in the same batch",
          async () => {
            await withDevice(async (database, id, writer) => {
              const tracker = new StoredSequenceTracker(database.db, writer);
              await tracker.last(id);
              assert.equal(await tracker.advance(id, 1000n), true);
              assert.equal(await tracker.reset(id, 3n, event(id)), 1000n);
              assert.equal(await tracker.last(id), 3n);
              assert.equal(await stored(database, id), 3n);
            });
          },
        );
      },
    );
  } finally {
    await shared.close();
  }
});
