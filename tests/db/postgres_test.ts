import assert from "node:assert/strict";
import { sql } from "drizzle-orm";
import { getDevice, openDatabase, registerDevice } from "../../db/mod.ts";
import { createTestDatabase, TEST_DATABASE_URL } from "./_postgres.ts";
import { storageSuite } from "./_suite.ts";

Deno.test({
  name: "storage suite on PostgreSQL, which keeps its data on reopen",
  ignore: TEST_DATABASE_URL === undefined,
  async fn(t) {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    try {
      const id = crypto.randomUUID();
      await t.step("a fresh database is migrated", async (t) => {
        const database = await openDatabase({ url: target.url });
        try {
          assert.equal(database.kind, "postgres");
          await registerDevice(database.db, { id, publicKey: "key" });
          await storageSuite(t, database);
        } finally {
          await database.close();
        }
      });
      await t.step("reopening applies no migration twice and keeps the data", async () => {
        const database = await openDatabase({ url: target.url });
        try {
          const rows = await database.db.execute(
            sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
          );
          const journal = JSON.parse(
            await Deno.readTextFile(
              new URL("../../db/migrations/meta/_journal.json", import.meta.url),
            ),
          ) as { entries: unknown[] };
          assert.equal((rows as unknown as { n: number }[])[0]?.n, journal.entries.length);
          assert.equal((await getDevice(database.db, id))?.id, id);
        } finally {
          await database.close();
        }
      });
    } finally {
      await target.drop();
    }
  },
});
