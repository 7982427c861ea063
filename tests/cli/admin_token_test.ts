import assert from "node:assert/strict";
import { join } from "node:path";
import { findApiToken, openDatabase } from "../../db/mod.ts";
import { createTestDatabase, TEST_DATABASE_URL } from "../db/_postgres.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function adminToken(env: Record<string, string>, args: string[] = []) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "admin-token", ...args],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test("admin-token mints an admin token in a PGlite data dir and prints it once", async () => {
  const root = await Deno.makeTempDir();
  try {
    const env = { FLOTILLA_DATA_DIR: join(root, "data"), PATH: Deno.env.get("PATH") ?? "" };
    const minted = await adminToken(env, ["--name", "ops-rescue"]);
    assert.equal(minted.code, 0, minted.stderr);
    const token = minted.stdout.trim();
    assert.match(token, /^flt_[A-Za-z0-9_-]{43}$/);
    assert.equal(minted.stdout, `${token}\n`, "stdout holds the token alone");
    assert.match(minted.stderr, /^admin token "ops-rescue" created in .*: shown once/);
    assert.ok(!minted.stderr.includes(token));

    const again = await adminToken(env, ["--name", "ops-rescue"]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'admin-token: Cannot create token: name "ops-rescue" is in use\n');

    const bad = await adminToken(env, ["--name", "no spaces"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid --name: "no spaces"/);

    // The folder is locked while a process has it open: a second opener is refused, not let in.
    const database = await openDatabase({ dataDir: env.FLOTILLA_DATA_DIR });
    try {
      const found = await findApiToken(database.db, token);
      assert.equal(found?.role, "admin");
      assert.equal(found?.name, "ops-rescue");
      const locked = await adminToken(env);
      assert.equal(locked.code, 1);
      assert.match(
        locked.stderr,
        /^admin-token: Cannot open database ".*": another process has it open/,
      );
    } finally {
      await database.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "admin-token mints an admin token in the PostgreSQL DATABASE_URL names",
  ignore: TEST_DATABASE_URL === undefined,
  async fn() {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    try {
      const minted = await adminToken({
        DATABASE_URL: target.url,
        PATH: Deno.env.get("PATH") ?? "",
      });
      assert.equal(minted.code, 0, minted.stderr);
      const database = await openDatabase({ url: target.url });
      try {
        assert.equal((await findApiToken(database.db, minted.stdout.trim()))?.role, "admin");
      } finally {
        await database.close();
      }
    } finally {
      await target.drop();
    }
  },
});
