import assert from "node:assert/strict";
import {
  decodeMessage,
  encodeMessage,
  SrupDecodeError,
  type SrupMessage,
  uuidToBytes,
} from "../../srup/mod.ts";
import { seededRandom } from "../_helpers.ts";

const SEEDS: SrupMessage[] = [
  {
    type: "initiate",
    version: 2,
    sequence: 7n,
    signature: new Uint8Array(64).fill(1),
    target: uuidToBytes("6f1c2f4e-8a3b-4c7d-9e2f-0a1b2c3d4e5f"),
    token: new Uint8Array(16).fill(2),
    url: "https://updates.example.com/fw/ünïcode.bin",
    digest: new Uint8Array(32).fill(3),
  },
  {
    type: "initiate",
    version: 3,
    sequence: 8n,
    signature: new Uint8Array(64).fill(6),
    target: uuidToBytes("6f1c2f4e-8a3b-4c7d-9e2f-0a1b2c3d4e5f"),
    token: new Uint8Array(16).fill(7),
    url: "https://updates.example.com/fw/1.4.2.bin",
    digest: new Uint8Array(32).fill(8),
    manifest: new Uint8Array(137).fill(9),
    notAfter: 1_893_456_000_000n,
  },
  {
    type: "response",
    version: 1,
    signature: new Uint8Array(64).fill(4),
    token: new Uint8Array(16).fill(5),
    status: 0xff,
  },
  {
    type: "activate",
    version: 2,
    sequence: 1n,
    signature: new Uint8Array(64),
    token: new Uint8Array(16),
  },
  {
    type: "rollback",
    version: 2,
    sequence: 9n,
    signature: new Uint8Array(64).fill(6),
    target: uuidToBytes("6f1c2f4e-8a3b-4c7d-9e2f-0a1b2c3d4e5f"),
    token: new Uint8Array(16).fill(7),
    digest: new Uint8Array(32).fill(8),
  },
  {
    type: "key_rotate",
    version: 2,
    sequence: 10n,
    signature: new Uint8Array(64).fill(6),
    target: uuidToBytes("6f1c2f4e-8a3b-4c7d-9e2f-0a1b2c3d4e5f"),
    token: new Uint8Array(16).fill(7),
    key: new Uint8Array(32).fill(8),
    proof: new Uint8Array(64).fill(9),
    overlap: 60_000n,
  },
].map((message) => message as SrupMessage);

/** Mutates a valid frame the ways a broken or hostile sender would. */
function mutate(frame: Uint8Array, random: () => number): Uint8Array {
  const int = (n: number) => Math.floor(random() * n);
  const out = frame.slice();
  switch (int(6)) {
    case 0: // bit flips
      for (let i = 1 + int(4); i > 0; i--) out[int(out.length)]! ^= 1 << int(8);
      return out;
    case 1: // truncation
      return out.subarray(0, int(out.length));
    case 2: // appended bytes
      return new Uint8Array([...out, ...crypto.getRandomValues(new Uint8Array(1 + int(8)))]);
    case 3: { // a length prefix set to an extreme or off-by-one value
      const at = 2 + int(out.length - 3);
      const value = [0, 1, 0xffff, 0x8000, (out[at]! << 8 | out[at + 1]!) + 1][int(5)]!;
      out[at] = value >> 8;
      out[at + 1] = value & 0xff;
      return out;
    }
    case 4: // random byte overwrites
      for (let i = 1 + int(8); i > 0; i--) out[int(out.length)] = int(256);
      return out;
    default: // a slice of the frame spliced into itself
      return new Uint8Array([
        ...out.subarray(0, int(out.length)),
        ...out.subarray(int(out.length)),
      ]);
  }
}

Deno.test("decodeMessage() lets only SrupDecodeError escape for 100,000 random and mutated frames", () => {
  const random = seededRandom(0x5eed);
  const frames = SEEDS.map(encodeMessage);
  let decoded = 0;
  let rejected = 0;
  const types = new Map<string, number>();
  for (let i = 0; i < 100_000; i++) {
    let input: Uint8Array;
    if (i % 2 === 0) {
      input = new Uint8Array(Math.floor(random() * 300));
      for (let j = 0; j < input.length; j++) input[j] = Math.floor(random() * 256);
      // Half the random frames get a valid version and type so the parser goes deeper.
      if (input.length > 1 && i % 4 === 0) {
        input[0] = 1 + (i % 12 === 0 ? 2 : i % 8 === 0 ? 1 : 0);
        input[1] = 1 + (i % 4);
      }
    } else {
      input = mutate(frames[(i >> 1) % frames.length]!, random);
    }
    try {
      const message = decodeMessage(input);
      // Whatever decodes must re-encode to exactly the bytes it came from.
      assert.deepEqual(encodeMessage(message), input);
      types.set(message.type, (types.get(message.type) ?? 0) + 1);
      decoded++;
    } catch (error) {
      if (!(error instanceof SrupDecodeError)) throw error;
      rejected++;
    }
  }
  assert.equal(decoded + rejected, 100_000);
  assert.ok(decoded > 1_000, `only ${decoded} mutated frames decoded: the fuzzer is too shallow`);
  assert.ok(rejected > 50_000, `only ${rejected} frames rejected`);
  for (const type of SEEDS.map((seed) => seed.type)) {
    assert.ok(types.get(type)! > 100, `only ${types.get(type) ?? 0} ${type} frames decoded`);
  }
});
