import assert from "node:assert/strict";
import {
  defaultEd25519,
  type Ed25519Backend,
  fromHex,
  nativeEd25519,
  nobleEd25519,
  privateKeyFromPem,
  privateKeyToPem,
  publicKeyFromPem,
  publicKeyToPem,
  randomPrivateKey,
  signMessage,
  toHex,
  verifyMessage,
} from "../../srup/mod.ts";
import { TEST_PUBLIC_KEY } from "../_helpers.ts";

const BACKENDS: Ed25519Backend[] = [nativeEd25519, nobleEd25519];

// RFC 8032 section 7.1: secret key, public key, message, signature.
const RFC8032 = [
  {
    name: "TEST 1",
    secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2",
    secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3",
    secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature:
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
  {
    name: "TEST SHA(abc)",
    secret: "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
    public: "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
    message:
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    signature:
      "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
  },
];

for (const backend of BACKENDS) {
  Deno.test(`${backend.name} Ed25519 passes the RFC 8032 test vectors`, async () => {
    for (const vector of RFC8032) {
      const secret = fromHex(vector.secret);
      const message = fromHex(vector.message);
      assert.equal(toHex(await backend.getPublicKey(secret)), vector.public, vector.name);
      assert.equal(toHex(await backend.sign(message, secret)), vector.signature, vector.name);
      assert.equal(
        await backend.verify(fromHex(vector.signature), message, fromHex(vector.public)),
        true,
        vector.name,
      );
    }
  });
}

Deno.test("native and noble sign byte-identically and verify each other's signatures", async () => {
  for (let i = 0; i < 50; i++) {
    const secret = randomPrivateKey();
    const data = crypto.getRandomValues(new Uint8Array(i * 7));
    const publicKey = await nobleEd25519.getPublicKey(secret);
    assert.deepEqual(await nativeEd25519.getPublicKey(secret), publicKey);
    const fromNative = await nativeEd25519.sign(data, secret);
    const fromNoble = await nobleEd25519.sign(data, secret);
    assert.deepEqual(fromNative, fromNoble);
    assert.equal(await nobleEd25519.verify(fromNative, data, publicKey), true);
    assert.equal(await nativeEd25519.verify(fromNoble, data, publicKey), true);
  }
});

Deno.test("both backends reject the same malformed signatures and keys without throwing", async () => {
  const vector = RFC8032[1]!;
  const signature = fromHex(vector.signature);
  const message = fromHex(vector.message);
  const publicKey = fromHex(vector.public);
  // S + L: the same point equation holds, but RFC 8032 requires S < L (malleability).
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i]!);
  const malleable = signature.slice();
  let sPlusL = s + L;
  for (let i = 0; i < 32; i++, sPlusL >>= 8n) malleable[32 + i] = Number(sPlusL & 0xffn);
  const cases: [string, Uint8Array, Uint8Array][] = [
    ["non-canonical S", malleable, publicKey],
    ["short signature", signature.subarray(0, 63), publicKey],
    ["long signature", new Uint8Array([...signature, 0]), publicKey],
    ["all-zero signature", new Uint8Array(64), publicKey],
    ["all-ones signature", new Uint8Array(64).fill(0xff), publicKey],
    ["short public key", signature, publicKey.subarray(0, 31)],
    ["public key not on the curve", signature, fromHex("02".padEnd(64, "f"))],
  ];
  for (const backend of BACKENDS) {
    for (const [name, sig, key] of cases) {
      assert.equal(await backend.verify(sig, message, key), false, `${backend.name}: ${name}`);
    }
  }
});

Deno.test("verifyMessage() returns false for a message that cannot be encoded", async () => {
  const message = await signMessage(
    { type: "activate", version: 1, signature: new Uint8Array(), token: new Uint8Array(0) },
    randomPrivateKey(),
  ).catch(() => undefined);
  assert.equal(message, undefined, "signing an empty token is misuse and throws");
  assert.equal(
    await verifyMessage(
      { type: "activate", version: 1, signature: new Uint8Array(64), token: new Uint8Array(0) },
      TEST_PUBLIC_KEY,
    ),
    false,
  );
});

Deno.test("defaultEd25519() picks the native backend on Deno", async () => {
  assert.equal((await defaultEd25519()).name, "native");
});

Deno.test("keys round-trip through PEM and read openssl's PKCS#8 and SPKI", async () => {
  const secret = randomPrivateKey();
  const publicKey = await nativeEd25519.getPublicKey(secret);
  assert.deepEqual(privateKeyFromPem(privateKeyToPem(secret)), secret);
  assert.deepEqual(publicKeyFromPem(publicKeyToPem(publicKey)), publicKey);
  // Written by `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.
  const opensslKey = "-----BEGIN PRIVATE KEY-----\n" +
    "MC4CAQAwBQYDK2VwBCIEINxe1Wk0+W0USYErXBKWsfWkjFzFS1rDZp+m4U6xe7p+\n" +
    "-----END PRIVATE KEY-----\n";
  const opensslPublic = "-----BEGIN PUBLIC KEY-----\n" +
    "MCowBQYDK2VwAyEA179/E4o7EiQ+EmiQGwWXa9qgmypo/nCSPyPz1gU45oY=\n" +
    "-----END PUBLIC KEY-----\n";
  assert.deepEqual(
    await nativeEd25519.getPublicKey(privateKeyFromPem(opensslKey)),
    publicKeyFromPem(opensslPublic),
  );
  assert.throws(() => privateKeyFromPem("not a key"), TypeError);
  assert.throws(() => publicKeyFromPem(privateKeyToPem(secret)), TypeError);
});
