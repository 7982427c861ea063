import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultEd25519, randomPrivateKey, signManifest } from "../../srup/mod.ts";
import { startTestService } from "../orchestrator/_service.ts";
import { sha256 } from "../device/_fixture.ts";
import { assertError, KEY, request } from "./_api.ts";

const RELEASE_KEY = randomPrivateKey();
const RELEASE_PUB = await (await defaultEd25519()).getPublicKey(RELEASE_KEY);

async function manifestOf(bytes: Uint8Array, key = RELEASE_KEY, patch: { size?: number } = {}) {
  const manifest = await signManifest({
    digest: await sha256(bytes),
    size: patch.size ?? bytes.length,
    name: "fw",
    version: "2.0.0",
    securityVersion: 3,
    hardware: ["rpi4"],
  }, key);
  return manifest.toBase64();
}

Deno.test({
  name: "artifact manifests through the API, with FLOTILLA_RELEASE_KEYS set",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"), {
      env: { FLOTILLA_RELEASE_KEYS: RELEASE_PUB.toBase64() },
    });
    try {
      const bytes = crypto.getRandomValues(new Uint8Array(2048));
      const upload = await request(service, "POST", "/v1/artifacts", {
        body: bytes,
        headers: { "content-type": "application/octet-stream" },
      });
      assert.equal(upload.status, 201);
      const digest = upload.body.digest as string;
      assert.equal(upload.body.release, null);
      await request(service, "POST", "/v1/devices", {
        json: { id: crypto.randomUUID(), publicKey: KEY },
      });

      await t.step(
        "GET /v1/server lists the release keys devices are provisioned with",
        async () => {
          const server = await request(service, "GET", "/v1/server");
          assert.deepEqual(server.body.releaseKeys, [RELEASE_PUB.toBase64()]);
          assert.equal(server.body.protocolVersion, 3);
        },
      );

      await t.step(
        "a rollout of an artifact with no manifest is refused: 422 unsigned_artifact",
        async () => {
          const refused = await request(service, "POST", "/v1/rollouts", {
            json: { artifact: { digest }, policy: "fast", targets: { all: true } },
          });
          assertError(
            refused,
            422,
            "unsigned_artifact",
            /has no release manifest.*allowUnsigned: true/,
          );
        },
      );

      await t.step(
        "PUT .../manifest refuses another key, another file, a wrong size, and junk",
        async () => {
          const put = (manifest: string) =>
            request(service, "PUT", `/v1/artifacts/${digest}/manifest`, { json: { manifest } });
          assertError(
            await put(await manifestOf(bytes, randomPrivateKey())),
            422,
            "invalid_manifest",
            /no configured release key/,
          );
          assertError(
            await put(await manifestOf(new Uint8Array(5))),
            422,
            "invalid_manifest",
            /names digest/,
          );
          assertError(
            await put(await manifestOf(bytes, RELEASE_KEY, { size: 1 })),
            422,
            "invalid_manifest",
            /names size 1, not 2048/,
          );
          assertError(await put("AAAA"), 422, "invalid_manifest", /Cannot decode manifest/);
          assertError(await put("not base64!"), 400, "invalid_request");
          const missing = await request(
            service,
            "PUT",
            `/v1/artifacts/${"0".repeat(64)}/manifest`,
            {
              json: { manifest: await manifestOf(bytes) },
            },
          );
          assertError(missing, 404, "not_found");
        },
      );

      await t.step(
        "PUT .../manifest stores a signed one; the artifact shows it; the rollout starts",
        async () => {
          const manifest = await manifestOf(bytes);
          const put = await request(service, "PUT", `/v1/artifacts/${digest}/manifest`, {
            json: { manifest },
          });
          assert.equal(put.status, 200, JSON.stringify(put.body));
          assert.deepEqual(put.body.release, {
            name: "fw",
            version: "2.0.0",
            securityVersion: 3,
            digest,
            size: 2048,
            hardware: ["rpi4"],
            expiresAt: null,
            rollbackRange: null,
            manifest,
          });
          const got = await request(service, "GET", `/v1/artifacts/${digest}`);
          assert.equal(got.body.release.manifest, manifest);
          const started = await request(service, "POST", "/v1/rollouts", {
            json: { artifact: { digest }, policy: "fast", targets: { all: true } },
          });
          assert.equal(started.status, 201, JSON.stringify(started.body));
        },
      );

      await t.step("an upload or registration with a bad manifest stores nothing", async () => {
        const other = crypto.getRandomValues(new Uint8Array(100));
        const query = encodeURIComponent(await manifestOf(other, randomPrivateKey()));
        const refused = await request(service, "POST", `/v1/artifacts?manifest=${query}`, {
          body: other,
          headers: { "content-type": "application/octet-stream" },
        });
        assertError(refused, 422, "invalid_manifest");
        const otherDigest = (await sha256(other)).toHex();
        assertError(
          await request(service, "GET", `/v1/artifacts/${otherDigest}`),
          404,
          "not_found",
        );
        const registered = await request(service, "POST", "/v1/artifacts", {
          json: {
            url: "https://cdn.example.com/other.bin",
            digest: otherDigest,
            size: 100,
            manifest: await manifestOf(other),
          },
        });
        assert.equal(registered.status, 201, JSON.stringify(registered.body));
        assert.equal(registered.body.release.securityVersion, 3);
      });

      await t.step(
        "allowUnsigned: true lets an unsigned artifact roll out (development)",
        async () => {
          const unsigned = crypto.getRandomValues(new Uint8Array(64));
          const up = await request(service, "POST", "/v1/artifacts", {
            body: unsigned,
            headers: { "content-type": "application/octet-stream" },
          });
          const id = crypto.randomUUID();
          await request(service, "POST", "/v1/devices", {
            json: { id, publicKey: KEY, frameVersion: 3 },
          });
          const device = await request(service, "GET", `/v1/devices/${id}`);
          assert.equal(device.body.frameVersion, 3);
          const started = await request(service, "POST", "/v1/rollouts", {
            json: {
              artifact: { digest: up.body.digest },
              policy: { name: "dev", stages: [{ percent: 100 }], allowUnsigned: true },
              targets: { ids: [id] },
            },
          });
          assert.equal(started.status, 201, JSON.stringify(started.body));
        },
      );
    } finally {
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
