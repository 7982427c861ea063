import assert from "node:assert/strict";
import { uuidv7 } from "../../db/mod.ts";

Deno.test("uuidv7() makes version 7 UUIDs that sort by their time", () => {
  const early = uuidv7(1_700_000_000_000);
  const late = uuidv7(1_700_000_000_001);
  assert.match(early, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(early < late);
  assert.equal(early.slice(0, 13), "018bcfe5-6800");
  assert.notEqual(uuidv7(5), uuidv7(5));
});
