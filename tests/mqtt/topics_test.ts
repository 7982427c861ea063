import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  deviceTopic,
  parseResponseTopic,
  responseSubscription,
  serverIdFromPublicKey,
  serverTopic,
} from "../../mqtt/mod.ts";
import { TEST_PUBLIC_KEY } from "../_helpers.ts";

const DEVICE = "0f8fad5b-d9cb-469f-a165-70867728950e";

Deno.test("topics follow the SRUP reference layout", () => {
  assert.equal(deviceTopic(DEVICE), `SRUP/${DEVICE}`);
  assert.equal(deviceTopic(DEVICE.toUpperCase()), `SRUP/${DEVICE}`);
  assert.equal(serverTopic("00aa", DEVICE), `SRUP/servers/00aa/${DEVICE}`);
  assert.equal(responseSubscription("00aa"), "SRUP/servers/00aa/+");
  assert.equal(
    responseSubscription("00aa", { shared: true }),
    "$share/flotilla/SRUP/servers/00aa/+",
  );
});

Deno.test("topic builders reject ids that would break the topic tree", () => {
  assert.throws(() => deviceTopic("not-a-uuid"), /Invalid device id: "not-a-uuid" is not a UUID/);
  assert.throws(() => deviceTopic(`${DEVICE}/#`), TypeError);
  assert.throws(() => serverTopic("+", DEVICE), /Invalid server id: "\+"/);
  assert.throws(() => responseSubscription("AB"), /Invalid server id: "AB"/);
});

Deno.test("parseResponseTopic() returns the device id only for this server's response topics", () => {
  assert.equal(parseResponseTopic(`SRUP/servers/00aa/${DEVICE}`, "00aa"), DEVICE);
  for (
    const topic of [
      `SRUP/servers/00ab/${DEVICE}`,
      `SRUP/servers/00aa/${DEVICE.toUpperCase()}`,
      `SRUP/servers/00aa/${DEVICE}/extra`,
      "SRUP/servers/00aa/nope",
      `SRUP/${DEVICE}`,
    ]
  ) {
    assert.equal(parseResponseTopic(topic, "00aa"), undefined, topic);
  }
});

Deno.test("serverIdFromPublicKey() is the first 16 hex characters of SHA-256 of the raw key", async () => {
  const expected = createHash("sha256").update(TEST_PUBLIC_KEY).digest("hex").slice(0, 16);
  assert.equal(await serverIdFromPublicKey(TEST_PUBLIC_KEY), expected);
  await assert.rejects(serverIdFromPublicKey(new Uint8Array(31)), RangeError);
});
