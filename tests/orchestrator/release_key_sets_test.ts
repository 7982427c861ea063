import assert from "node:assert/strict";
import { ConfigError } from "../../orchestrator/config.ts";
import { releaseKeyChain } from "../../orchestrator/release_key_sets.ts";
import { defaultEd25519, randomPrivateKey, signKeySet } from "../../srup/mod.ts";

const ed = await defaultEd25519();

Deno.test("releaseKeyChain(): the server enforces the keys its chain ends at, and refuses to start on a broken chain", async () => {
  const k1 = randomPrivateKey();
  const k2 = randomPrivateKey();
  const stranger = randomPrivateKey();
  const p1 = await ed.getPublicKey(k1);
  const p2 = await ed.getPublicKey(k2);
  const v2 = await signKeySet({ version: 2, keys: [p2] }, [k1, k2]);
  assert.deepEqual(await releaseKeyChain({ releaseKeys: [p1] }), { version: 1, keys: [p1] });
  assert.deepEqual(await releaseKeyChain({ releaseKeys: [p1], releaseKeySets: [v2] }), {
    version: 2,
    keys: [p2],
  });
  // Made on the server, with a key no release key vouches for.
  const madeUp = await signKeySet({ version: 3, keys: [await ed.getPublicKey(stranger)] }, [
    stranger,
  ]);
  await assert.rejects(
    releaseKeyChain({ releaseKeys: [p1], releaseKeySets: [v2, madeUp] }),
    (error) =>
      error instanceof ConfigError &&
      error.message ===
        "Invalid FLOTILLA_RELEASE_KEY_SETS: document 2 does not follow the keys before it: not_signed_by_trusted_key",
  );
});
