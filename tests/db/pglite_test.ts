import assert from "node:assert/strict";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { getDevice, openDatabase, registerDevice } from "../../db/mod.ts";
import { storageSuite } from "./_suite.ts";

const JOURNAL = JSON.parse(
  await Deno.readTextFile(new URL("../../db/migrations/meta/_journal.json", import.meta.url)),
) as { entries: unknown[] };

async function appliedMigrations(db: Awaited<ReturnType<typeof openDatabase>>["db"]) {
  const result = await db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
  return (result as unknown as { rows: { n: number }[] }).rows[0]?.n;
}

Deno.test("storage suite on in-memory PGlite", async (t) => {
  const database = await openDatabase({ memory: true });
  try {
    assert.equal(database.kind, "pglite");
    assert.equal(database.location, "memory");
    await storageSuite(t, database);
  } finally {
    await database.close();
  }
});

Deno.test("storage suite on PGlite in a fresh data dir, which keeps its data on reopen", async (t) => {
  const dataDir = await Deno.makeTempDir({ prefix: "flotilla-db-" });
  try {
    const id = crypto.randomUUID();
    await t.step("a fresh data dir is created and migrated", async (t) => {
      const database = await openDatabase({ dataDir });
      try {
        assert.equal(database.location, join(dataDir, "pglite"));
        assert.equal(await appliedMigrations(database.db), JOURNAL.entries.length);
        await registerDevice(database.db, { id, publicKey: "key", tags: { kept: "yes" } });
        await storageSuite(t, database);
      } finally {
        await database.close();
      }
    });
    await t.step("reopening applies no migration twice and keeps the data", async () => {
      const database = await openDatabase({ dataDir });
      try {
        assert.equal(await appliedMigrations(database.db), JOURNAL.entries.length);
        assert.deepEqual((await getDevice(database.db, id))?.tags, { kept: "yes" });
      } finally {
        await database.close();
      }
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
