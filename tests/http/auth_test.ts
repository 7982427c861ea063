import assert from "node:assert/strict";
import { Hono } from "hono";
import { createApiToken, type Database, openDatabase } from "../../db/mod.ts";
import { authenticate, TokenVerifier } from "../../http/auth.ts";
import type { AppEnv } from "../../http/env.ts";
import { handleError } from "../../http/errors.ts";

function guarded(verifier: TokenVerifier) {
  const app = new Hono<AppEnv>();
  app.use("*", authenticate(verifier));
  app.get("/", (c) => c.json({ caller: c.get("caller").name }));
  app.onError(handleError);
  return app;
}

function bearer(token: string): RequestInit {
  return { headers: { authorization: `Bearer ${token}` } };
}

Deno.test({
  name: "authenticate() keeps memory bounded whatever tokens unauthenticated clients send",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    let database: Database | undefined;
    try {
      database = await openDatabase({ memory: true });
      // Simulated time: no cache entry expires however slowly the flood runs.
      let now = 1_000_000;
      const verifier = new TokenVerifier(database.db, { now: () => now });
      const app = guarded(verifier);
      const known = await createApiToken(database.db, { name: "ops", role: "operator" });

      await t.step("a valid token logs in, and a second use is served from the cache", async () => {
        assert.equal((await app.request("/", bearer(known.plaintext))).status, 200);
        const lookups = verifier.lookups;
        assert.equal((await app.request("/", bearer(known.plaintext))).status, 200);
        assert.equal(verifier.lookups, lookups);
      });

      await t.step("thousands of distinct unknown tokens leave the cache bounded", async () => {
        for (let i = 0; i < 3000; i++) {
          const token = `made-up-${i}-${"x".repeat(400)}`;
          const response = await app.request("/", bearer(token));
          assert.equal(response.status, 401);
          await response.body?.cancel();
        }
        assert.ok(verifier.size <= 1100, `cache holds ${verifier.size} entries`);
        // The flood did not push the real token out.
        const lookups = verifier.lookups;
        assert.equal((await app.request("/", bearer(known.plaintext))).status, 200);
        assert.equal(verifier.lookups, lookups);
      });

      await t.step("a cached look-up is redone once it is 10 s old", async () => {
        const lookups = verifier.lookups;
        now += 10_001;
        assert.equal((await app.request("/", bearer(known.plaintext))).status, 200);
        assert.equal(verifier.lookups, lookups + 1);
      });

      await t.step("an over-long token is refused with 401 before any lookup", async () => {
        const lookups = verifier.lookups;
        const size = verifier.size;
        const response = await app.request("/", bearer("y".repeat(64 * 1024)));
        assert.equal(response.status, 401);
        const body = await response.json();
        assert.equal(body.error.code, "unauthorized");
        assert.match(body.error.message, /at most 512 characters/);
        const longer = await app.request("/", bearer("z".repeat(513)));
        assert.equal(longer.status, 401);
        assert.match((await longer.json()).error.message, /513 characters: a token is at most 512/);
        assert.equal(verifier.lookups, lookups);
        assert.equal(verifier.size, size);
      });
    } finally {
      await database?.close();
    }
  },
});
