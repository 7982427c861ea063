import assert from "node:assert/strict";
import {
  decodeManifest,
  defaultEd25519,
  randomPrivateKey,
  signManifest,
  UPDATE_FAIL_DIGEST,
  UPDATE_REFUSED_UNSIGNED,
} from "../../srup/mod.ts";
import { agentFixture, fetchReturning, sha256 } from "./_fixture.ts";

const NOW = Date.UTC(2026, 11, 2, 12);
const KEY = randomPrivateKey();
const PUB = await (await defaultEd25519()).getPublicKey(KEY);
// Two genuine releases of the same size, each signed on its own.
const A = new TextEncoder().encode("firmware A\n".repeat(100));
const B = new TextEncoder().encode("firmware B\n".repeat(100));

async function signed(bytes: Uint8Array, version: string, securityVersion: number) {
  return await signManifest({
    digest: await sha256(bytes),
    size: bytes.length,
    name: "fw",
    version,
    securityVersion,
    hardware: [],
  }, KEY);
}

Deno.test("mix-and-match: a server cannot pair one release's manifest with another's file, label or signature", async (t) => {
  const manifestA = await signed(A, "1.0", 1);
  const manifestB = await signed(B, "2.0", 2);
  let serve = A;
  const served = fetchReturning(() => new Response(serve));
  const f = await agentFixture({ fetch: served.fetch, releaseKeys: [PUB] });
  f.clock.set(NOW);
  const agent = await f.make();
  async function send(digest: Uint8Array, manifest: Uint8Array): Promise<number> {
    const { frame } = await f.initiate({
      url: "https://updates.example/fw.bin",
      digest,
      version: 3,
      manifest,
      notAfter: BigInt(NOW + 60_000),
    });
    await agent.handleFrame(frame);
    return f.replies.at(-1)!.message.status;
  }

  await t.step(
    "A's manifest with B's digest: refused before anything is fetched (0xFB)",
    async () => {
      assert.equal(await send(await sha256(B), manifestA), UPDATE_REFUSED_UNSIGNED);
      assert.equal(served.calls.length, 0);
    },
  );
  await t.step(
    "A's manifest and digest, B's bytes at the URL: the download fails its digest (0xFF)",
    async () => {
      serve = B;
      assert.equal(await send(await sha256(A), manifestA), UPDATE_FAIL_DIGEST);
      assert.equal(f.replies.length, 2);
      assert.equal(agent.status().staged, null);
    },
  );
  await t.step(
    "A's file and signature spliced with B's version label: the signature fails (0xFB)",
    async () => {
      // Same length labels, so the splice decodes: the version text of B inside A's manifest.
      const spliced = manifestA.slice();
      const a = decodeManifest(manifestA);
      const offset = 53 + 1 + a.name.length + 1;
      spliced.set(new TextEncoder().encode("2.0"), offset);
      assert.equal(decodeManifest(spliced).version, "2.0");
      assert.equal(await send(await sha256(A), spliced), UPDATE_REFUSED_UNSIGNED);
    },
  );
  await t.step("A's body with B's signature: refused (0xFB)", async () => {
    const mixed = manifestA.slice();
    mixed.set(manifestB.subarray(manifestB.length - 64), mixed.length - 64);
    assert.equal(await send(await sha256(A), mixed), UPDATE_REFUSED_UNSIGNED);
  });
  await t.step("each release whole: installs", async () => {
    serve = B;
    assert.equal(await send(await sha256(B), manifestB), 0x00);
  });
});
