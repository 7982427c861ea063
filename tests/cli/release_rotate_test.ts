import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decodeKeySet,
  encodeMessage,
  keyFingerprint,
  newToken,
  privateKeyFromPem,
  publicKeyFromPem,
  randomPrivateKey,
  signDeviceKey,
  toHex,
} from "../../srup/mod.ts";
import { flotilla } from "../_helpers.ts";

Deno.test("srup decode shows a DEVICE_KEY's new key, its fingerprint and its proof", async () => {
  const message = await signDeviceKey({
    oldPrivateKey: randomPrivateKey(),
    newPrivateKey: randomPrivateKey(),
    sequence: 5n,
    token: newToken(),
  });
  const { code, stdout } = await flotilla(["srup", "decode", toHex(encodeMessage(message))]);
  assert.equal(code, 0);
  const json = JSON.parse(stdout);
  assert.equal(json.type, "device_key");
  assert.equal(json.sequence, "5");
  assert.equal(json.key, toHex(message.key));
  assert.equal(json.keyFingerprint, keyFingerprint(message.key));
  assert.equal(json.proof, toHex(message.proof));
  // A key of the wrong length decodes (its length is only capped); it has no fingerprint.
  const short = await flotilla([
    "srup",
    "decode",
    "0206000000000000000500020102000201020003aabbcc0002dddd",
  ]);
  assert.equal(short.code, 0, short.stderr);
  assert.equal(JSON.parse(short.stdout).key, "aabbcc");
  assert.equal(JSON.parse(short.stdout).keyFingerprint, undefined);
});

Deno.test("srup release rotate signs the next key set; release verify --chain follows it", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    for (const name of ["old", "new", "newer"]) {
      const made = await flotilla(["srup", "keygen", "--out", join(dir, name)]);
      assert.equal(made.code, 0, made.stderr);
    }
    const key = (name: string) => join(dir, name, "ed25519.key");
    const pub = (name: string) => join(dir, name, "ed25519.pub");
    const firmware = join(dir, "fw.bin");
    await Deno.writeTextFile(firmware, "firmware\n");
    const signed = await flotilla([
      "srup",
      "release",
      "sign",
      "--key",
      key("new"),
      "--file",
      firmware,
      "--name",
      "fw",
      "--version",
      "1",
      "--security-version",
      "1",
    ]);
    assert.equal(signed.code, 0, signed.stderr);
    const v2 = join(dir, "v2.keyset");
    const v3 = join(dir, "v3.keyset");

    await t.step("version 2: the new key, signed by the old key and by itself", async () => {
      const rotated = await flotilla([
        "srup",
        "release",
        "rotate",
        "--key",
        key("old"),
        "--new-key",
        key("new"),
        "--out",
        v2,
      ]);
      assert.equal(rotated.code, 0, rotated.stderr);
      const printed = JSON.parse(rotated.stdout);
      const newPub = publicKeyFromPem(await Deno.readTextFile(pub("new")));
      const oldPub = publicKeyFromPem(await Deno.readTextFile(pub("old")));
      assert.equal(printed.version, 2);
      assert.deepEqual(printed.keys, [{
        key: newPub.toBase64(),
        fingerprint: keyFingerprint(newPub),
      }]);
      assert.deepEqual(printed.signedBy, [keyFingerprint(oldPub), keyFingerprint(newPub)]);
      assert.deepEqual(decodeKeySet(await Deno.readFile(v2)).keys, [newPub]);
    });
    await t.step("verify: the new key's manifest needs the chain from the old key", async () => {
      const args = [
        "srup",
        "release",
        "verify",
        "--pub",
        pub("old"),
        "--manifest",
        `${firmware}.manifest`,
      ];
      const without = await flotilla(args);
      assert.equal(without.code, 1);
      assert.match(without.stderr, /not signed by that release key/);
      const withChain = await flotilla([...args, "--chain", v2, "--file", firmware]);
      assert.equal(withChain.code, 0, withChain.stderr);
      assert.equal(JSON.parse(withChain.stdout).verified, true);
    });
    await t.step(
      "version 3 follows version 2 (--previous); the old key is revoked by then",
      async () => {
        const rotated = await flotilla([
          "srup",
          "release",
          "rotate",
          "--key",
          key("new"),
          "--new-key",
          key("newer"),
          "--keep",
          pub("new"),
          "--previous",
          v2,
          "--out",
          v3,
        ]);
        assert.equal(rotated.code, 0, rotated.stderr);
        assert.equal(JSON.parse(rotated.stdout).version, 3);
        assert.equal(decodeKeySet(await Deno.readFile(v3)).keys.length, 2);
        // Signed by the revoked old key instead: version 3 does not follow version 2.
        const forged = join(dir, "forged.keyset");
        assert.equal(
          (await flotilla([
            "srup",
            "release",
            "rotate",
            "--key",
            key("old"),
            "--keep",
            pub("old"),
            "--previous",
            v2,
            "--out",
            forged,
          ])).code,
          0,
        );
        const refused = await flotilla([
          "srup",
          "release",
          "verify",
          "--pub",
          pub("old"),
          "--chain",
          v2,
          "--chain",
          forged,
          "--manifest",
          `${firmware}.manifest`,
        ]);
        assert.equal(refused.code, 1);
        assert.equal(
          refused.stderr.trim(),
          `Cannot verify key set "${forged}": not_signed_by_trusted_key`,
        );
      },
    );
    await t.step(
      "bad input: one line, exit 2 for usage, 1 for a file that is not what it should be",
      async () => {
        const noKey = await flotilla(["srup", "release", "rotate", "--new-key", key("new")]);
        assert.equal(noKey.code, 2);
        assert.equal(noKey.stderr.trim().split("\n").length, 1);
        const pubAsKey = await flotilla([
          "srup",
          "release",
          "rotate",
          "--key",
          pub("old"),
          "--new-key",
          key("new"),
        ]);
        assert.equal(pubAsKey.code, 1);
        assert.match(pubAsKey.stderr, /no "PRIVATE KEY" PEM block/);
        const notKeySet = await flotilla([
          "srup",
          "release",
          "rotate",
          "--key",
          key("old"),
          "--new-key",
          key("new"),
          "--previous",
          firmware,
        ]);
        assert.equal(notKeySet.code, 1);
        assert.match(notKeySet.stderr, /Cannot read --previous .*format 0x66 is unknown/);
        assert.ok(privateKeyFromPem(await Deno.readTextFile(key("old"))));
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
