/** SRUP codec and Ed25519 throughput: `deno task bench`. */
import {
  decodeMessage,
  encodeMessage,
  encodeSigningInput,
  nativeEd25519,
  nobleEd25519,
  randomPrivateKey,
  signMessage,
  type SrupMessage,
  uuidToBytes,
} from "../srup/mod.ts";

const privateKey = randomPrivateKey();
const publicKey = await nativeEd25519.getPublicKey(privateKey);
const initiate: SrupMessage = await signMessage({
  type: "initiate",
  version: 2,
  sequence: 1234n,
  signature: new Uint8Array(),
  target: uuidToBytes("6f1c2f4e-8a3b-4c7d-9e2f-0a1b2c3d4e5f"),
  token: crypto.getRandomValues(new Uint8Array(16)),
  url: "https://updates.example.com/artifacts/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c",
  digest: crypto.getRandomValues(new Uint8Array(32)),
}, privateKey);
const frame = encodeMessage(initiate);
const input = encodeSigningInput(initiate);
const signature = initiate.signature;

Deno.bench("encode INITIATE v2", { group: "codec", baseline: true }, () => {
  encodeMessage(initiate);
});
Deno.bench("decode INITIATE v2", { group: "codec" }, () => {
  decodeMessage(frame);
});
Deno.bench("encode+decode INITIATE v2", { group: "codec" }, () => {
  decodeMessage(encodeMessage(initiate));
});

for (const backend of [nativeEd25519, nobleEd25519]) {
  Deno.bench(
    `${backend.name} sign`,
    { group: "sign", baseline: backend === nativeEd25519 },
    async () => {
      await backend.sign(input, privateKey);
    },
  );
  Deno.bench(
    `${backend.name} verify`,
    { group: "verify", baseline: backend === nativeEd25519 },
    async () => {
      await backend.verify(signature, input, publicKey);
    },
  );
}
