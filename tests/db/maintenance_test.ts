import assert from "node:assert/strict";
import { sql } from "drizzle-orm";
import { Maintenance, openDatabase, registerDevices, updateDevices } from "../../db/mod.ts";
import { rowsOf } from "../../db/page.ts";

// Backends report table counters at most once a second unless told to flush now.
async function flushStats(db: Awaited<ReturnType<typeof openDatabase>>["db"]) {
  await db.execute(sql`select pg_stat_force_next_flush()`);
  await db.execute(sql`select 1`);
}

Deno.test("Maintenance analyzes a table that grew and vacuums one full of dead rows", async (t) => {
  const database = await openDatabase({ memory: true });
  const lines: string[] = [];
  const maintenance = new Maintenance(database, { log: (line) => lines.push(line) });
  try {
    const { db } = database;
    const ids = Array.from({ length: 2000 }, () => crypto.randomUUID());
    await registerDevices(db, ids.map((id) => ({ id, publicKey: "key" })));
    await flushStats(db);

    await t.step("a bulk load gets statistics", async () => {
      const run = await maintenance.run();
      assert.deepEqual(run, { vacuumed: [], analyzed: ["devices"] });
      assert.match(
        lines.at(-1)!,
        /^maintenance: analyzed devices \(2000 live rows, 0 dead\) in \d+ ms$/,
      );
    });

    await t.step("an unchanged table is left alone", async () => {
      await flushStats(db);
      assert.deepEqual(await maintenance.run(), { vacuumed: [], analyzed: [] });
    });

    await t.step("rewritten rows are vacuumed once they pass a fifth of the table", async () => {
      await updateDevices(db, ids.slice(0, 300).map((id) => ({ id, sequence: 1n })));
      await flushStats(db);
      assert.deepEqual(await maintenance.run(), { vacuumed: [], analyzed: [] }, "300 dead < 450");
      await updateDevices(db, ids.slice(300, 600).map((id) => ({ id, sequence: 1n })));
      await flushStats(db);
      assert.deepEqual(await maintenance.run(), { vacuumed: ["devices"], analyzed: [] });
      await flushStats(db);
      const [stats] = rowsOf<{ dead: number; vacuumed: boolean }>(
        await db.execute(sql`
          select n_dead_tup::int as dead, last_vacuum is not null as vacuumed
          from pg_stat_user_tables where relname = 'devices'`),
      );
      assert.deepEqual(stats, { dead: 0, vacuumed: true });
    });
  } finally {
    await maintenance.stop();
    await database.close();
  }
});
