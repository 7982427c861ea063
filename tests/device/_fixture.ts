/** A device agent in memory: real signatures, an injected fetch and a simulated clock. */
import { SimulatedClock } from "xstate";
import {
  type ActivateMessage,
  decodeMessage,
  defaultEd25519,
  encodeMessage,
  type InitiateMessage,
  keyFingerprint,
  type KeyRotateMessage,
  newToken,
  randomPrivateKey,
  type ResponseMessage,
  type RollbackMessage,
  signKeyProof,
  signMessage,
  uuidToBytes,
  verifyMessage,
} from "../../srup/mod.ts";
import {
  createDeviceAgent,
  type DeviceAgent,
  type DeviceAgentOptions,
  type DeviceStore,
  MemoryDeviceStore,
} from "../../device/mod.ts";
import { TEST_PRIVATE_KEY, TEST_PUBLIC_KEY } from "../_helpers.ts";

/** A RESPONSE the agent published, verified with the device key. */
export interface Reply {
  topic: string;
  message: ResponseMessage;
}

/** Options for {@linkcode agentFixture}. */
export type FixtureOptions = Partial<Omit<DeviceAgentOptions, "publish">>;

/** A simulated clock that counts the timers armed on it, so a test can wait for them. */
export class CountingClock extends SimulatedClock {
  armed = 0;

  override setTimeout(fn: (...args: unknown[]) => void, timeout: number): number {
    this.armed++;
    return super.setTimeout(fn, timeout);
  }
}

/** An agent, its store and clock, and helpers that sign frames as the server would. */
export async function agentFixture(options: FixtureOptions = {}) {
  const deviceId = options.deviceId ?? crypto.randomUUID();
  const privateKey = options.privateKey ?? randomPrivateKey();
  const publicKey = await (await defaultEd25519()).getPublicKey(privateKey);
  const store: DeviceStore = options.store ?? new MemoryDeviceStore();
  const clock = new CountingClock();
  const replies: Reply[] = [];
  let serverSequence = 0n;

  async function make(overrides: FixtureOptions = {}): Promise<DeviceAgent> {
    return await createDeviceAgent({
      deviceId,
      privateKey,
      serverKey: TEST_PUBLIC_KEY,
      store,
      clock,
      ...options,
      ...overrides,
      async publish(topic, frame) {
        const message = decodeMessage(frame);
        if (message.type !== "response") throw new Error(`Agent sent a ${message.type}`);
        if (!await verifyMessage(message, publicKey)) throw new Error("Reply signature is bad");
        replies.push({ topic, message });
      },
    });
  }

  /** An INITIATE frame (version 2, the next server sequence id, unless overridden). */
  async function initiate(
    fields: Partial<InitiateMessage> & { url: string; digest: Uint8Array },
    signer: Uint8Array = TEST_PRIVATE_KEY,
  ) {
    const message = await signMessage<InitiateMessage>({
      type: "initiate",
      version: 2,
      sequence: ++serverSequence,
      target: uuidToBytes(deviceId),
      token: newToken(),
      signature: new Uint8Array(),
      ...fields,
    }, signer);
    return { message, frame: encodeMessage(message) };
  }

  /** A signed ACTIVATE frame for `token`. */
  async function activate(
    token: Uint8Array,
    fields: Partial<ActivateMessage> = {},
    signer: Uint8Array = TEST_PRIVATE_KEY,
  ) {
    const message = await signMessage<ActivateMessage>({
      type: "activate",
      version: 2,
      sequence: ++serverSequence,
      token,
      signature: new Uint8Array(),
      ...fields,
    }, signer);
    return { message, frame: encodeMessage(message) };
  }

  /**
   * [SRUP-10] A KEY_ROTATE to `next` (its proof made with `next.privateKey` for the fixture's
   * server id), signed by `signer`.
   */
  async function keyRotate(
    next: { privateKey: Uint8Array; publicKey: Uint8Array },
    fields: Partial<KeyRotateMessage> = {},
    signer: Uint8Array = TEST_PRIVATE_KEY,
  ) {
    const target = fields.target ?? uuidToBytes(deviceId);
    const token = fields.token ?? newToken();
    const key = fields.key ?? next.publicKey;
    const proof = await signKeyProof(
      { key, serverId: keyFingerprint(TEST_PUBLIC_KEY), target, token },
      next.privateKey,
    );
    const message = await signMessage<KeyRotateMessage>({
      type: "key_rotate",
      version: 2,
      sequence: ++serverSequence,
      target,
      token,
      key,
      proof,
      overlap: 0n,
      signature: new Uint8Array(),
      ...fields,
    }, signer);
    return { message, frame: encodeMessage(message) };
  }

  /** A signed ROLLBACK frame naming `digest` as the version to go back to. */
  async function rollback(
    digest: Uint8Array,
    fields: Partial<RollbackMessage> = {},
    signer: Uint8Array = TEST_PRIVATE_KEY,
  ) {
    const message = await signMessage<RollbackMessage>({
      type: "rollback",
      version: 2,
      sequence: ++serverSequence,
      target: uuidToBytes(deviceId),
      token: newToken(),
      digest,
      signature: new Uint8Array(),
      ...fields,
    }, signer);
    return { message, frame: encodeMessage(message) };
  }

  return {
    deviceId,
    publicKey,
    store,
    clock,
    replies,
    make,
    initiate,
    activate,
    rollback,
    keyRotate,
  };
}

/** SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** A fetch that answers every URL with `body` (or a Response factory), counting calls. */
export function fetchReturning(
  respond: (url: string, init?: RequestInit) => Response | Promise<Response>,
) {
  const calls: string[] = [];
  const fetchFn = ((input: string | URL | Request, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    calls.push(url);
    return Promise.resolve(respond(url, init));
  }) as typeof fetch;
  return { fetch: fetchFn, calls };
}
