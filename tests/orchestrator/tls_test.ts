import assert from "node:assert/strict";
import { join } from "node:path";
import { ADMIN_TOKEN, startTestService } from "./_service.ts";

Deno.test({
  name: "serve answers over HTTPS with FLOTILLA_TLS_CERT and FLOTILLA_TLS_KEY",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const ca = join(root, "ca.pem");
    const cert = join(root, "cert.pem");
    const key = join(root, "key.pem");
    const ext = join(root, "ext.cnf");
    await Deno.writeTextFile(ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
    // A private CA and a server certificate it signed, as an operator's PKI would issue.
    for (
      const args of [
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=flotilla test CA",
          "-keyout",
          join(root, "ca.key"),
          "-out",
          ca,
        ],
        [
          "req",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-subj",
          "/CN=127.0.0.1",
          "-keyout",
          key,
          "-out",
          join(root, "server.csr"),
        ],
        [
          "x509",
          "-req",
          "-in",
          join(root, "server.csr"),
          "-CA",
          ca,
          "-CAkey",
          join(root, "ca.key"),
          "-CAcreateserial",
          "-days",
          "1",
          "-extfile",
          ext,
          "-out",
          cert,
        ],
      ]
    ) {
      const made = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
        .output();
      assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
    }
    const service = await startTestService(join(root, "data"), {
      env: { FLOTILLA_TLS_CERT: cert, FLOTILLA_TLS_KEY: key },
    });
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(ca)] });
    try {
      assert.match(service.apiUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
      const response = await fetch(`${service.apiUrl}/v1/server`, {
        client,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(response.status, 200);
      assert.equal((await response.json()).serverId, service.serverId);
      await assert.rejects(
        fetch(`${service.apiUrl}/healthz`),
        "an untrusted certificate is refused",
      );
    } finally {
      client.close();
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
