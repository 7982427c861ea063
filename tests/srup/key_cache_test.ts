import assert from "node:assert/strict";
import { KeyCache } from "../../srup/key_cache.ts";

/** A stand-in for an imported key, and a loader that counts its calls. */
function loader() {
  const loads: string[] = [];
  return {
    loads,
    load: (raw: Uint8Array) => () => {
      loads.push(raw.toHex());
      return Promise.resolve({ raw } as unknown as CryptoKey);
    },
  };
}

const A = Uint8Array.of(1);
const B = Uint8Array.of(2);
const C = Uint8Array.of(3);

Deno.test("KeyCache loads a key once and returns the same key while it is kept", async () => {
  const { loads, load } = loader();
  const cache = new KeyCache({ limit: 2 });
  const first = await cache.get(A, load(A));
  const again = await cache.get(Uint8Array.of(1), load(A));
  assert.equal(again, first);
  assert.deepEqual(loads, ["01"]);
});

Deno.test("KeyCache evicts the least recently used key, not the oldest inserted", async () => {
  const { loads, load } = loader();
  const cache = new KeyCache({ limit: 2 });
  await cache.get(A, load(A));
  await cache.get(B, load(B));
  await cache.get(A, load(A)); // A is now the most recently used
  await cache.get(C, load(C)); // evicts B
  assert.equal(cache.size, 2);
  await cache.get(A, load(A));
  await cache.get(B, load(B));
  assert.deepEqual(loads, ["01", "02", "03", "02"]);
});

Deno.test("KeyCache forgets a failed import, so the next call tries again", async () => {
  const cache = new KeyCache({ limit: 4 });
  await assert.rejects(
    cache.get(A, () => Promise.reject(new TypeError("bad key"))),
    /bad key/,
  );
  assert.equal(cache.size, 0);
  const { loads, load } = loader();
  await cache.get(A, load(A));
  assert.deepEqual(loads, ["01"]);
});

Deno.test("KeyCache refuses a limit that is not a positive integer", () => {
  for (const limit of [0, -1, 1.5, NaN]) {
    assert.throws(() => new KeyCache({ limit }), RangeError);
  }
});
