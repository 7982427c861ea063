import assert from "node:assert/strict";
import {
  bytesToUuid,
  decodeManifest,
  decodeMessage,
  encodeMessage,
  fromHex,
  nativeEd25519,
  nobleEd25519,
  signMessage,
  toHex,
  verifyMessage,
} from "../../srup/mod.ts";
import { TEST_PRIVATE_KEY, TEST_PUBLIC_KEY } from "../_helpers.ts";

// Signed with the RFC 8032 TEST 1 key: target 6f1c2f4e-…, token 0011…eeff, sequence 42 in v2 and
// v3. The v3 INITIATE carries the golden manifest of manifest_test.ts and not-after 2030-01-01.
const GOLDEN: Record<string, string> = {
  "initiate v1":
    "010100404591a19bde4c9d84221f0516795781d33ce8e1679503a65b29495e0bbbb285a224249932126f20abf913bb8589b5c9dfb386f66dfb8bc19701c0285c550c4f0200106f1c2f4e8a3b4c7d9e2f0a1b2c3d4e5f001000112233445566778899aabbccddeeff002868747470733a2f2f757064617465732e6578616d706c652e636f6d2f66772f312e322e332e62696e0020e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "response v1":
    "010200403d122e9e8833bba2d1d5cfc5a80cbda9754071b948258a7e70956a6c50746a747423f6c43efe238d4c830cf3c1a4b384b1bf6663cf5c82d944a3501f92212c0f001000112233445566778899aabbccddeeff00",
  "activate v1":
    "01030040e350ff6fd0db60c82e86a20bdcf1df389272d3c457da0d5c2db33cc62d2d2e528670a3e96e36bfa8c3b3afcfc9ab8fc754c7a94a42576fa00b489752195e8307001000112233445566778899aabbccddeeff",
  "initiate v2":
    "0201000000000000002a00405f5a000c1f66e98a99522a83a5f77fe460ede440adcbbbceda7348d6220bbdd34cc6fe7205aef6aede2498a6971cace8e3294b4194ba9c08c2a4d532b9bb7a0800106f1c2f4e8a3b4c7d9e2f0a1b2c3d4e5f001000112233445566778899aabbccddeeff002868747470733a2f2f757064617465732e6578616d706c652e636f6d2f66772f312e322e332e62696e0020e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "response v2":
    "0202000000000000002a0040b032c979e24c7962f4b4dd5aceea6c84ef32b9fb38d16a16759ede7a104940240ce320fe452ff593b464a93229c07bb67fa16e62ef3c38a84411263202d63f05001000112233445566778899aabbccddeeff00",
  "activate v2":
    "0203000000000000002a00405dc48338cbc34bb209d4995196efbff8a1163257f1ab6bf3c9814d98a8da49ec946e83375fd7dcad5ed316d570485db3cb6400fc66fefa0ea85e04b5676ffb09001000112233445566778899aabbccddeeff",
  // [SRUP-9] Digest: SHA-256 of the empty string, the version the device is told to go back to.
  "rollback v2":
    "0204000000000000002a00407c53b744890a577d7d8307dce2f8ea06242d52c257300d99500a08333151413b94710b2b3a31211e69d4869ec223f8085b1f517ba492363944e55206b8fdc30500106f1c2f4e8a3b4c7d9e2f0a1b2c3d4e5f001000112233445566778899aabbccddeeff0020e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "initiate v3":
    "0301000000000000002a00405d8f87c41cbd1b79f43923a95a4cc1353190fcf29ef369204bdfd5f0bf57a9849467712da60a3104e223e072a88ce6911d91ecdff67223f50e1706495e76fe0700106f1c2f4e8a3b4c7d9e2f0a1b2c3d4e5f001000112233445566778899aabbccddeeff002868747470733a2f2f757064617465732e6578616d706c652e636f6d2f66772f312e322e332e62696e0020e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855008901e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855000000000001e240000000070000000070dbd88002667705312e342e32020472706934047270693584b9a4a7eedb82f51ceb44b3adaa6cd64062f7597f6a9243090014bfbc01d1052c4a61ecc9bedae01c09ec853d720db3589851837c27343eaf8c622955351100000001b8dac5b400",
  "response v3":
    "0302000000000000002a004058764b1de4155d166a1723b1a0f34669fe4f7e22dccc61f3c2526d700e97d351e72f0db60709cf4c33bb719d0f336c2656ec590e7c222c2ee0de21d0d6d0d50f001000112233445566778899aabbccddeeff00",
  "activate v3":
    "0303000000000000002a0040f2271e0ac1f09700d6260cb128313c129f85b55c0e455c9db02611e9720b8d379994b37c505839f03002b64262105176b6d9e5a5d4d9c5c9a0ffdf6a28436401001000112233445566778899aabbccddeeff",
};

for (const [name, hex] of Object.entries(GOLDEN)) {
  Deno.test(`golden signed ${name} frame decodes, verifies and re-signs byte for byte`, async () => {
    const message = decodeMessage(fromHex(hex));
    const [type, version] = name.split(" ");
    assert.equal(message.type, type);
    assert.equal(message.version, Number(version!.slice(1)));
    assert.equal(message.sequence, version === "v1" ? undefined : 42n);
    assert.equal(toHex(message.token), "00112233445566778899aabbccddeeff");
    if (message.type === "initiate" || message.type === "rollback") {
      assert.equal(bytesToUuid(message.target), "6f1c2f4e-8a3b-4c7d-9e2f-0a1b2c3d4e5f");
      assert.equal(
        toHex(message.digest),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      );
    }
    if (message.type === "initiate") {
      assert.equal(message.url, "https://updates.example.com/fw/1.2.3.bin");
      if (version === "v3") {
        assert.equal(message.notAfter, BigInt(Date.UTC(2030, 0, 1)));
        assert.equal(decodeManifest(message.manifest!).version, "1.4.2");
      } else {
        assert.equal(message.manifest, undefined);
      }
    }
    if (message.type === "response") assert.equal(message.status, 0x00);
    for (const backend of [nativeEd25519, nobleEd25519]) {
      assert.equal(await verifyMessage(message, TEST_PUBLIC_KEY, { backend }), true, backend.name);
      const resigned = await signMessage(
        { ...message, signature: new Uint8Array() },
        TEST_PRIVATE_KEY,
        { backend },
      );
      assert.equal(toHex(encodeMessage(resigned)), hex, backend.name);
    }
  });
}

Deno.test("flipping any single bit of a signed frame makes verification fail", async () => {
  for (const [name, hex] of Object.entries(GOLDEN)) {
    const frame = fromHex(hex);
    let decodedButRejected = 0;
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const flipped = frame.slice();
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      let message;
      try {
        message = decodeMessage(flipped);
      } catch {
        continue; // A frame that does not decode never reaches verification.
      }
      decodedButRejected++;
      assert.equal(
        await verifyMessage(message, TEST_PUBLIC_KEY),
        false,
        `${name}: bit ${bit} flipped still verifies`,
      );
    }
    // Most flips land in the signature, token, URL or digest and still decode.
    assert.ok(decodedButRejected > frame.length * 4, `${name}: only ${decodedButRejected} decoded`);
  }
});
