import assert from "node:assert/strict";
import {
  classifyError,
  ConflictError,
  InvalidDataError,
  openDatabase,
  sqlState,
} from "../../db/mod.ts";

Deno.test("openDatabase() refuses a URL that is not postgres:// without echoing it", async () => {
  await assert.rejects(
    openDatabase({ url: "mysql://root:secret@127.0.0.1/db" }),
    (error) =>
      error instanceof TypeError &&
      error.message ===
        'Cannot open database: URL scheme "mysql:" is not "postgres:" or "postgresql:"',
  );
  await assert.rejects(
    openDatabase({ url: "not a url secret" }),
    (error) => error instanceof TypeError && !error.message.includes("secret"),
  );
});

Deno.test("openDatabase() names the server it cannot reach, without the password", async () => {
  // Port 1 on loopback: nothing listens there, so the connection is refused at once.
  await assert.rejects(
    openDatabase({ url: "postgres://flotilla:hunter2@127.0.0.1:1/flotilla" }),
    (error) =>
      error instanceof Error &&
      error.message.startsWith(
        'Cannot open database "postgres://flotilla:***@127.0.0.1:1/flotilla": ',
      ) &&
      !error.message.includes("hunter2"),
  );
});

Deno.test("classifyError() sorts SQLSTATEs into conflict, bad data and the rest", () => {
  const pg = (code: string) =>
    Object.assign(new Error("boom"), { code, detail: "Key (id)=(1) exists." });
  const wrapped = new Error("Failed query: insert ...", { cause: pg("23505") });
  assert.equal(sqlState(wrapped), "23505");
  const conflict = classifyError(wrapped, "Cannot do it");
  assert.ok(conflict instanceof ConflictError);
  assert.equal(conflict.message, "Cannot do it: Key (id)=(1) exists");
  assert.equal(conflict.cause, wrapped);
  assert.ok(classifyError(pg("23503"), "x") instanceof InvalidDataError);
  assert.ok(classifyError(pg("22P02"), "x") instanceof InvalidDataError);
  const infra = pg("57P01");
  assert.equal(classifyError(infra, "x"), infra, "admin shutdown is not bad data");
  const plain = new Error("ECONNRESET");
  assert.equal(classifyError(plain, "x"), plain);
  assert.equal(sqlState(plain), undefined);
});
