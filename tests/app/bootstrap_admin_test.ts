import assert from "node:assert/strict";
import { bootstrapAdmin } from "../../app/service.ts";
import { type Database, findApiToken, listApiTokens, openDatabase } from "../../db/mod.ts";
import { createTestDatabase, TEST_DATABASE_URL } from "../db/_postgres.ts";

// Nodes of a cluster start together on one database with the same settings. Before the fix, the
// node that lost the race to record FLOTILLA_ADMIN_TOKEN exited with "Cannot create token: the
// token is already in use" (seen starting two nodes on one PostgreSQL), and without the variable
// the loser of the race to make the first admin token exited on its name. The second race fails
// here every time without the fix; the first depends on how the two transactions interleave, and
// in process they rarely overlap, so its test guards the fix rather than reproducing the race.

if (TEST_DATABASE_URL === undefined) {
  console.log("bootstrapAdmin on PostgreSQL skipped: FLOTILLA_TEST_DATABASE_URL is not set");
}

/** Two nodes' databases: one PGlite shared by both, or two connections to a fresh PostgreSQL. */
async function twoNodes(
  kind: "pglite" | "postgres",
): Promise<{ nodes: [Database, Database]; close(): Promise<void> }> {
  if (kind === "pglite") {
    const database = await openDatabase({ memory: true });
    return { nodes: [database, database], close: () => database.close() };
  }
  const target = await createTestDatabase(TEST_DATABASE_URL!);
  const first = await openDatabase({ url: target.url });
  const second = await openDatabase({ url: target.url });
  return {
    nodes: [first, second],
    async close() {
      await first.close();
      await second.close();
      await target.drop();
    },
  };
}

for (const kind of ["pglite", "postgres"] as const) {
  Deno.test({
    name:
      `bootstrapAdmin (${kind}): two nodes recording the same FLOTILLA_ADMIN_TOKEN at once both start`,
    ignore: kind === "postgres" && TEST_DATABASE_URL === undefined,
    async fn() {
      const { nodes, close } = await twoNodes(kind);
      try {
        const token = "admintoken-cluster-race-0123456789";
        const logs: string[] = [];
        const results = await Promise.allSettled(
          nodes.map((node) => bootstrapAdmin(node.db, token, (line) => logs.push(line))),
        );
        assert.deepEqual(results, [
          { status: "fulfilled", value: undefined },
          { status: "fulfilled", value: undefined },
        ]);
        assert.deepEqual(logs, []);
        assert.equal((await findApiToken(nodes[0].db, token))?.role, "admin");
        const live = (await listApiTokens(nodes[0].db)).filter((row) => !row.revokedAt);
        assert.equal(live.length, 1);
      } finally {
        await close();
      }
    },
  });

  Deno.test({
    name:
      `bootstrapAdmin (${kind}): two nodes making the first admin token at once: one prints it, both start`,
    ignore: kind === "postgres" && TEST_DATABASE_URL === undefined,
    async fn() {
      const { nodes, close } = await twoNodes(kind);
      try {
        const results = await Promise.allSettled(
          nodes.map((node) => bootstrapAdmin(node.db, undefined, () => {})),
        );
        assert.deepEqual(results.map((result) => result.status), ["fulfilled", "fulfilled"]);
        const printed = results.flatMap((result) =>
          result.status === "fulfilled" && result.value !== undefined ? [result.value] : []
        );
        assert.equal(printed.length, 1);
        assert.equal((await findApiToken(nodes[0].db, printed[0]!))?.role, "admin");
        const live = (await listApiTokens(nodes[0].db)).filter((row) => !row.revokedAt);
        assert.equal(live.length, 1);
      } finally {
        await close();
      }
    },
  });
}
