/** The orchestrator's end of the wire: signed INITIATE/ACTIVATE/ROLLBACK/KEY_ROTATE out, verified RESPONSEs in. */
import {
  type ActivateMessage,
  decodeMessage,
  defaultEd25519,
  type DeviceKeyMessage,
  encodeMessage,
  type InitiateMessage,
  type KeyRotateMessage,
  newToken,
  type ReleaseKeysMessage,
  type ResponseMessage,
  type RollbackMessage,
  signKeyProof,
  signMessage,
  SrupDecodeError,
  statusName,
  toHex,
  uuidToBytes,
  verifyMessage,
} from "../srup/mod.ts";
import type { SequenceAllocator } from "../io/sequence.ts";
import type { MqttConnection } from "./connection.ts";
import { KeyedQueue } from "./keyed_queue.ts";
import { type Logger, silentLogger } from "../obs/log.ts";
import { RejectionCounter, type RejectReason } from "./rejections.ts";
import { RejectionLog } from "./rejection_log.ts";
import { type Clock, wallClock } from "../io/clock.ts";
import { MemorySequenceTracker, type SequenceTracker } from "./sequence_tracker.ts";
import {
  deviceTopic,
  isServerId,
  parseResponseTopic,
  responseSubscription,
  serverIdFromPublicKey,
} from "./topics.ts";

/** Receives every verified RESPONSE; errors it throws are logged, never propagated. */
export type ResponseHandler = (deviceId: string, message: ResponseMessage) => void | Promise<void>;

/**
 * [SRUP-11] Decides a DEVICE_KEY: acknowledge (the new key is recorded durably, or was already),
 * or drop it with a reason.
 */
export type DeviceKeyHandler = (
  deviceId: string,
  message: DeviceKeyMessage,
) => Promise<DeviceKeyVerdict>;

/** What a {@linkcode DeviceKeyHandler} decided. */
export type DeviceKeyVerdict =
  | { acknowledge: true }
  | { acknowledge: false; reason: RejectReason; fields?: Record<string, unknown> };

/** Options for {@linkcode createServerLink}. */
export interface ServerLinkOptions {
  /** The server's Ed25519 private key (32-byte seed): signs every frame sent, unless `signingKey` says. */
  privateKey: Uint8Array;
  /** [SRUP-10] The key that signs frames to a device (the one it trusts); default `privateKey`. */
  signingKey?: (deviceId: string) => Uint8Array;
  /** The server's outgoing sequence ids; must be durable, or devices drop frames after a restart. */
  sequence: SequenceAllocator;
  /** The public key of a device, or undefined for a device the server does not know. */
  deviceKey(deviceId: string): Promise<Uint8Array | undefined>;
  onResponse: ResponseHandler;
  /** [SRUP-11] Takes DEVICE_KEYs; without one they are dropped as `unexpected_type`. */
  onDeviceKey?: DeviceKeyHandler;
  /** Defaults to the first 16 hex characters of SHA-256 over the server's public key. */
  serverId?: string;
  /**
   * [SRUP-12] Release key set documents, in chain order: each goes to a device in a RELEASE_KEYS
   * just before every version 3 INITIATE, so a device that missed a rotation catches up first.
   */
  releaseKeySets?: readonly Uint8Array[];
  /** Last sequence id accepted per device; in memory by default. */
  tracker?: SequenceTracker;
  /** Use the `$share/flotilla/` subscription; defaults to true on MQTT 5 and false on 3.1.1. */
  shared?: boolean;
  /** Counts rejected frames by reason; pass one to share it (e.g. with metrics). */
  rejections?: RejectionCounter;
  /** The clock of the timeouts given to `timedOut()`, and of the rejection log's rate limit; default the wall clock. */
  clock?: Clock;
  /** `frame.rejected` lines go here, at most one per reason a second, with a summary. */
  logger?: Logger;
}

/** The fields of an INITIATE the caller chooses; the link adds target, version, sequence, signature. */
export interface InitiateFields {
  token: Uint8Array;
  url: string;
  digest: Uint8Array;
  /** [SRUP-7] A signed release manifest: the INITIATE goes out in version 3 with `notAfter`. */
  manifest?: Uint8Array;
  /** [SRUP-8] Unix milliseconds after which the device must not act on it (version 3). */
  notAfter?: bigint;
}

/** The fields of an ACTIVATE the caller chooses. */
export interface ActivateFields {
  token: Uint8Array;
}

/** The fields of a ROLLBACK the caller chooses: the digest of the version to go back to. */
export interface RollbackFields {
  token: Uint8Array;
  digest: Uint8Array;
}

/** Options of one send. */
export interface SendOptions {
  /**
   * Checked last, after the id is taken and the frame signed, right before it is handed to the
   * client: false withholds the frame (a cluster node whose lease may have lapsed). Rejects then
   * with a {@linkcode WithheldSendError}.
   */
  mayPublish?: () => boolean;
}

/** A frame not published because its sender's `mayPublish` said no. */
export class WithheldSendError extends Error {
  constructor(deviceId: string) {
    super(`Cannot send to "${deviceId}": the frame was withheld (lease not held)`);
    this.name = "WithheldSendError";
  }
}

/** [SRUP-10] The fields of a KEY_ROTATE the caller chooses: the new key, its seed (for the proof), the overlap. */
export interface KeyRotateFields {
  token: Uint8Array;
  /** The new raw public key. */
  key: Uint8Array;
  /** The new key's seed: signs the proof, never sent. */
  keyPrivate: Uint8Array;
  /** Milliseconds the device still accepts the old key. */
  overlap: number;
}

/** Subscribes to the response topic and returns the link; rejects when the broker refuses. */
export async function createServerLink(
  connection: MqttConnection,
  options: ServerLinkOptions,
): Promise<ServerLink> {
  const publicKey = await (await defaultEd25519()).getPublicKey(options.privateKey);
  const serverId = options.serverId ?? await serverIdFromPublicKey(publicKey);
  if (!isServerId(serverId)) throw new TypeError(`Invalid server id: "${serverId}"`);
  const shared = options.shared ?? connection.protocolVersion === 5;
  if (shared && connection.protocolVersion !== 5) {
    throw new RangeError("Cannot use a shared subscription: the broker speaks MQTT 3.1.1");
  }
  const link = new ServerLink(connection, { ...options, serverId });
  await connection.subscribe(responseSubscription(serverId, { shared }));
  return link;
}

/** A connected orchestrator link; see {@linkcode createServerLink}. */
export class ServerLink {
  readonly #connection: MqttConnection;
  readonly #options: ServerLinkOptions;
  readonly #tracker: SequenceTracker;
  readonly #logger: Logger;
  readonly #inbound = new KeyedQueue();
  readonly #outbound = new KeyedQueue();
  readonly #unsubscribe: () => void;
  /** The id in this server's response topic. */
  readonly serverId: string;
  /** Frames dropped, by reason. */
  readonly rejections: RejectionCounter;
  readonly #now: () => number;
  readonly #rejectionLog: RejectionLog;
  readonly #offStatus: () => void;
  /** When the connection last came up; undefined while it is down. */
  #connectedSince: number | undefined;
  /** When the last verified RESPONSE arrived (the link's creation before the first). */
  #heardAt: number;
  /** The stall under way: since when, and how many devices timed out in it. */
  #stall: { since: number; timeouts: number } | undefined;
  #stalls = 0;
  #withheld = 0;
  #silentTimeouts = 0;

  /** Use {@linkcode createServerLink}, which also subscribes. */
  constructor(connection: MqttConnection, options: ServerLinkOptions & { serverId: string }) {
    this.#connection = connection;
    this.#options = options;
    this.#tracker = options.tracker ?? new MemorySequenceTracker();
    this.#logger = options.logger ?? silentLogger;
    this.serverId = options.serverId;
    this.rejections = options.rejections ?? new RejectionCounter();
    const clock = options.clock ?? wallClock;
    this.#now = () => clock.now();
    this.#rejectionLog = new RejectionLog({ logger: this.#logger, clock });
    this.#heardAt = this.#now();
    this.#connectedSince = connection.connected ? this.#heardAt : undefined;
    this.#offStatus = connection.onStatus((connected) => {
      this.#connectedSince = connected ? this.#now() : undefined;
    });
    this.#unsubscribe = connection.onMessage((topic, payload) => this.#receive(topic, payload));
  }

  /** Whether devices are timing out while the broker is up and no RESPONSE arrives at all. */
  get stalled(): boolean {
    return this.#stall !== undefined;
  }

  /** Frames withheld by their sender's `mayPublish` (a lease that may have lapsed). */
  get withheld(): number {
    return this.#withheld;
  }

  /** Stalls so far; see {@linkcode timedOut}. */
  get stalls(): number {
    return this.#stalls;
  }

  /** Devices that timed out while connected with no RESPONSE from any device meanwhile. */
  get silentTimeouts(): number {
    return this.#silentTimeouts;
  }

  /**
   * Tells the link that `deviceId` sent no RESPONSE within `waitedMs`. When the broker connection
   * was up and no verified RESPONSE from any device arrived all that time, the server may be deaf
   * (a subscription lost in the broker): counted, and true when this starts a stall.
   */
  timedOut(deviceId: string, waitedMs: number): boolean {
    const since = this.#now() - waitedMs;
    if (this.#connectedSince === undefined || this.#connectedSince > since) return false;
    if (this.#heardAt > since) return false;
    this.#silentTimeouts++;
    if (this.#stall) {
      this.#stall.timeouts++;
      return false;
    }
    this.#stall = { since: this.#heardAt, timeouts: 1 };
    this.#stalls++;
    this.#logger.warn("response.stalled", {
      device: deviceId,
      waitedMs,
      silentMs: this.#now() - this.#heardAt,
      connectedMs: this.#now() - this.#connectedSince,
    });
    return true;
  }

  /** Signs and publishes an INITIATE to `deviceId`; resolves with the sent message on PUBACK. */
  sendInitiate(
    deviceId: string,
    fields: InitiateFields,
    options?: SendOptions,
  ): Promise<InitiateMessage> {
    const target = uuidToBytes(deviceId);
    return this.#send(deviceId, { type: "initiate", ...pick(fields), target }, options);
  }

  /** Signs and publishes an ACTIVATE to `deviceId`; resolves with the sent message on PUBACK. */
  sendActivate(
    deviceId: string,
    fields: ActivateFields,
    options?: SendOptions,
  ): Promise<ActivateMessage> {
    return this.#send(deviceId, { type: "activate", token: fields.token }, options);
  }

  /** [SRUP-9] Signs and publishes a ROLLBACK to `deviceId`; resolves with the sent message on PUBACK. */
  sendRollback(
    deviceId: string,
    fields: RollbackFields,
    options?: SendOptions,
  ): Promise<RollbackMessage> {
    const target = uuidToBytes(deviceId);
    return this.#send(deviceId, {
      type: "rollback",
      token: fields.token,
      digest: fields.digest,
      target,
    }, options);
  }

  /**
   * [SRUP-10] Signs (with the key the device trusts now) and publishes a KEY_ROTATE to `deviceId`,
   * its proof made by the new key for this server's id; resolves with the sent message on PUBACK.
   */
  async sendKeyRotate(
    deviceId: string,
    fields: KeyRotateFields,
    options?: SendOptions,
  ): Promise<KeyRotateMessage> {
    const target = uuidToBytes(deviceId);
    const proof = await signKeyProof(
      { key: fields.key, serverId: this.serverId, target, token: fields.token },
      fields.keyPrivate,
    );
    return await this.#send<KeyRotateMessage>(deviceId, {
      type: "key_rotate",
      token: fields.token,
      target,
      key: fields.key,
      proof,
      overlap: BigInt(fields.overlap),
    }, options);
  }

  /** Stops delivering responses and writes any pending rejection summary; the connection stays open. */
  close(): void {
    this.#unsubscribe();
    this.#offStatus();
    this.#rejectionLog.flush();
  }

  /**
   * Counts and logs a delivered RESPONSE its handler drops: `unknown_token`, a token no rollout
   * issued to that device. Logged at most once a second per reason, like every rejection.
   */
  reject(reason: RejectReason, fields: Record<string, unknown>): void {
    this.rejections.add(reason);
    this.#rejectionLog.rejected(reason, fields);
  }

  #send<T extends InitiateMessage | ActivateMessage | RollbackMessage | KeyRotateMessage>(
    deviceId: string,
    fields: Omit<T, "version" | "sequence" | "signature">,
    options: SendOptions = {},
  ): Promise<T> {
    const topic = deviceTopic(deviceId);
    // Per device, ids are taken and frames handed to the client in one order, so a device never
    // sees a lower sequence id after a higher one.
    const queued = this.#outbound.run(deviceId, async () => {
      if ("manifest" in fields) await this.#sendKeySets(deviceId, topic);
      const sequence = await this.#options.sequence.next();
      // [SRUP-2.1] Version 3 only for an INITIATE carrying a manifest: older agents keep getting 2.
      const version = "manifest" in fields ? 3 : 2;
      const unsigned = { ...fields, version, sequence, signature: new Uint8Array() } as T;
      const message = await signMessage(unsigned, this.#keyFor(deviceId));
      if (options.mayPublish && !options.mayPublish()) {
        this.#withheld++;
        throw new WithheldSendError(deviceId);
      }
      return { message, acked: this.#connection.publish(topic, encodeMessage(message)) };
    });
    return queued.then(async ({ message, acked }) => {
      await acked;
      return message;
    });
  }

  /** The key that signs frames to `deviceId`: the one it trusts ([SRUP-10]). */
  #keyFor(deviceId: string): Uint8Array {
    return this.#options.signingKey?.(deviceId) ?? this.#options.privateKey;
  }

  /** [SRUP-12.2] The key set chain, one RELEASE_KEYS each, ahead of a version 3 INITIATE. */
  async #sendKeySets(deviceId: string, topic: string): Promise<void> {
    for (const keySet of this.#options.releaseKeySets ?? []) {
      const message = await signMessage<ReleaseKeysMessage>({
        type: "release_keys",
        version: 2,
        sequence: await this.#options.sequence.next(),
        target: uuidToBytes(deviceId),
        token: newToken(),
        keySet,
        signature: new Uint8Array(),
      }, this.#keyFor(deviceId));
      // Handed to the client before the INITIATE, so the broker delivers it first.
      this.#connection.publish(topic, encodeMessage(message)).catch((error) => {
        this.#logger.error("release_keys.failed", { device: deviceId, error: String(error) });
      });
    }
  }

  #receive(topic: string, payload: Uint8Array): void {
    const deviceId = parseResponseTopic(topic, this.serverId);
    if (deviceId === undefined) {
      this.reject("bad_topic", { topic });
      return;
    }
    // Per device, so the last-sequence check sees frames in the order the broker delivered them.
    this.#inbound.run(deviceId, () => this.#accept(deviceId, payload)).catch((error) => {
      this.#logger.error("response.failed", { device: deviceId, error: String(error) });
    });
  }

  async #accept(deviceId: string, payload: Uint8Array): Promise<void> {
    let message;
    try {
      message = decodeMessage(payload);
    } catch (error) {
      if (!(error instanceof SrupDecodeError)) throw error;
      this.reject(error.code, { device: deviceId, offset: error.offset });
      return;
    }
    if (message.type === "device_key" && this.#options.onDeviceKey) {
      return await this.#deviceKey(deviceId, message, this.#options.onDeviceKey);
    }
    if (message.type !== "response") {
      this.reject("unexpected_type", { device: deviceId, type: message.type });
      return;
    }
    const publicKey = await this.#options.deviceKey(deviceId);
    if (!publicKey) {
      this.reject("unknown_device", { device: deviceId });
      return;
    }
    // [SRUP-5.1] Verified before any replay counter moves: a forged frame must not lock anyone out.
    if (!await verifyMessage(message, publicKey)) {
      this.reject("bad_signature", { device: deviceId });
      return;
    }
    if (
      message.sequence !== undefined && !await this.#tracker.advance(deviceId, message.sequence)
    ) {
      this.reject("replay", { device: deviceId, sequence: message.sequence });
      return;
    }
    this.#heard();
    try {
      await this.#options.onResponse(deviceId, message);
    } catch (error) {
      this.#logger.error("response.handler_failed", {
        device: deviceId,
        token: toHex(message.token),
        status: statusName(message.status),
        error: String(error),
      });
    }
  }

  /**
   * [SRUP-11.3] Acknowledges a DEVICE_KEY the handler took with an ACTIVATE of its token; the
   * handler has recorded the key before, so an acknowledged rotation is never lost.
   */
  async #deviceKey(
    deviceId: string,
    message: DeviceKeyMessage,
    handler: DeviceKeyHandler,
  ): Promise<void> {
    const verdict = await handler(deviceId, message);
    if (!verdict.acknowledge) {
      this.reject(verdict.reason, { device: deviceId, type: "device_key", ...verdict.fields });
      return;
    }
    this.#heard();
    // Not awaited: this device's next frame need not wait for the broker's PUBACK.
    this.sendActivate(deviceId, { token: message.token }).catch((error) => {
      this.#logger.error("key.ack_failed", { device: deviceId, error: String(error) });
    });
  }

  #heard(): void {
    this.#heardAt = this.#now();
    if (!this.#stall) return;
    this.#logger.info("response.resumed", {
      stalledMs: this.#heardAt - this.#stall.since,
      timeouts: this.#stall.timeouts,
    });
    this.#stall = undefined;
  }
}

function pick(fields: InitiateFields): InitiateFields {
  const { token, url, digest, manifest, notAfter } = fields;
  return manifest === undefined
    ? { token, url, digest }
    : { token, url, digest, manifest, notAfter };
}
