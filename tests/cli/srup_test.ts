import assert from "node:assert/strict";
import { join } from "node:path";
import { nativeEd25519, privateKeyFromPem, publicKeyFromPem, toBase64 } from "../../srup/mod.ts";
import { flotilla } from "../_helpers.ts";

const TABLE_II =
  "010100085349475f4441544100065441524745540005544f4b454e001768747470733a2f2f7777772e6578616d706c652e636f6d0006444947455354";

Deno.test("srup decode prints the Table II frame as JSON", async () => {
  const { code, stdout } = await flotilla(["srup", "decode", TABLE_II]);
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), {
    type: "initiate",
    version: 1,
    signature: "5349475f44415441",
    target: "544152474554",
    token: "544f4b454e",
    url: "https://www.example.com",
    digest: "444947455354",
  });
});

Deno.test("srup decode reads hex from stdin", async () => {
  const { code, stdout } = await flotilla(["srup", "decode"], { stdin: `0x${TABLE_II}\n` });
  assert.equal(code, 0);
  assert.equal(JSON.parse(stdout).url, "https://www.example.com");
});

Deno.test("srup decode prints one line on stderr and exits 2 for a malformed frame", async () => {
  const truncated = await flotilla(["srup", "decode", TABLE_II.slice(0, -2)]);
  assert.equal(truncated.code, 2);
  assert.equal(truncated.stdout, "");
  assert.equal(truncated.stderr.trim().split("\n").length, 1);
  assert.match(truncated.stderr, /Cannot decode frame: .*"digest".*code "truncated", offset 54/);
  const notHex = await flotilla(["srup", "decode", "zz"]);
  assert.equal(notHex.code, 2);
  assert.equal(notHex.stderr.trim(), "Cannot decode frame: input is not hex");
});

Deno.test("srup keygen writes a 0600 PKCS#8 key and an SPKI public key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, stdout } = await flotilla(["srup", "keygen", "--out", dir]);
    assert.equal(code, 0);
    const { publicKey } = JSON.parse(stdout);
    const keyPath = join(dir, "ed25519.key");
    assert.equal((await Deno.stat(keyPath)).mode! & 0o777, 0o600);
    const seed = privateKeyFromPem(await Deno.readTextFile(keyPath));
    const raw = publicKeyFromPem(await Deno.readTextFile(join(dir, "ed25519.pub")));
    assert.deepEqual(await nativeEd25519.getPublicKey(seed), raw);
    assert.equal(publicKey, toBase64(raw));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("srup keygen refuses to replace an existing key: exit 1, one line; --force replaces it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = JSON.parse((await flotilla(["srup", "keygen", "--out", dir])).stdout);
    const keyPath = join(dir, "ed25519.key");
    const pem = await Deno.readTextFile(keyPath);
    const again = await flotilla(["srup", "keygen", "--out", dir]);
    assert.equal(again.code, 1);
    assert.equal(
      again.stderr.trim(),
      `Cannot write key: "${keyPath}" already exists (--force replaces it)`,
    );
    assert.equal(await Deno.readTextFile(keyPath), pem, "the key is untouched");
    const forced = await flotilla(["srup", "keygen", "--out", dir, "--force"]);
    assert.equal(forced.code, 0);
    assert.notEqual(JSON.parse(forced.stdout).publicKey, first.publicKey);
    assert.notEqual(await Deno.readTextFile(keyPath), pem);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unknown command exits 2 with the help", async () => {
  const { code, stderr } = await flotilla(["frobnicate"]);
  assert.equal(code, 2);
  assert.match(stderr, /Unknown command "frobnicate"/);
  assert.match(stderr, /serve/);
});

Deno.test("srup release sign writes a manifest that release verify accepts for that file only", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await flotilla(["srup", "keygen", "--out", join(dir, "release")]);
    await flotilla(["srup", "keygen", "--out", join(dir, "other")]);
    const file = join(dir, "fw.bin");
    await Deno.writeFile(file, new Uint8Array(1000).fill(7));
    const key = join(dir, "release", "ed25519.key");
    const pub = join(dir, "release", "ed25519.pub");
    const manifest = join(dir, "fw.manifest");
    await t.step("sign: prints the manifest, writes --out", async () => {
      const signed = await flotilla([
        "srup",
        "release",
        "sign",
        "--key",
        key,
        "--file",
        file,
        "--name",
        "fw",
        "--version",
        "1.4.2",
        "--security-version",
        "7",
        "--hardware",
        "rpi4",
        "--hardware",
        "rpi5",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--out",
        manifest,
      ]);
      assert.equal(signed.code, 0, signed.stderr);
      const json = JSON.parse(signed.stdout);
      assert.equal(json.securityVersion, 7);
      assert.equal(json.size, 1000);
      assert.deepEqual(json.hardware, ["rpi4", "rpi5"]);
      assert.equal(json.expiresAt, "2099-01-01T00:00:00.000Z");
    });
    await t.step("verify: the right key and file pass", async () => {
      const ok = await flotilla([
        "srup",
        "release",
        "verify",
        "--pub",
        pub,
        "--manifest",
        manifest,
        "--file",
        file,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(JSON.parse(ok.stdout).verified, true);
    });
    await t.step("verify: another key, another file: one line, exit 1", async () => {
      const otherKey = await flotilla([
        "srup",
        "release",
        "verify",
        "--pub",
        join(dir, "other", "ed25519.pub"),
        "--manifest",
        manifest,
      ]);
      assert.equal(otherKey.code, 1);
      assert.match(
        otherKey.stderr.trim(),
        /^Cannot verify manifest ".*": not signed by that release key$/,
      );
      await Deno.writeFile(file, new Uint8Array(1001).fill(7));
      const otherFile = await flotilla([
        "srup",
        "release",
        "verify",
        "--pub",
        pub,
        "--manifest",
        manifest,
        "--file",
        file,
      ]);
      assert.equal(otherFile.code, 1);
      assert.match(
        otherFile.stderr,
        /\(1001 bytes, [0-9a-f]{64}\) is not the signed file \(1000 bytes/,
      );
    });
    await t.step("usage errors exit 2 with one line", async () => {
      const missing = await flotilla(["srup", "release", "sign", "--key", key, "--file", file]);
      assert.equal(missing.code, 2);
      assert.equal(missing.stderr.trim(), "srup: srup release sign needs --name");
      const badVersion = await flotilla([
        "srup",
        "release",
        "sign",
        "--key",
        key,
        "--file",
        file,
        "--name",
        "fw",
        "--version",
        "1",
        "--security-version",
        "1.5",
      ]);
      assert.equal(badVersion.code, 2);
      assert.match(badVersion.stderr, /Invalid --security-version "1.5"/);
      const badName = await flotilla([
        "srup",
        "release",
        "sign",
        "--key",
        key,
        "--file",
        file,
        "--name",
        "f w",
        "--version",
        "1",
        "--security-version",
        "1",
      ]);
      assert.equal(badName.code, 2);
      assert.match(badName.stderr, /name "f w" must be 1 to 64 printable ASCII/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
