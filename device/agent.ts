/** The device agent's core: SRUP frames in, signed RESPONSEs out; no connection, no exit. */
import {
  ACTIVATE_FAIL,
  ACTIVATE_SUCCESS,
  type ActivateMessage,
  decodeMessage,
  encodeMessage,
  equalBytes,
  fromHex,
  type InitiateMessage,
  type KeyRotateMessage,
  newToken,
  randomPrivateKey,
  type ReleaseKeysMessage,
  type ResponseMessage,
  ROLLBACK_UNAVAILABLE,
  type RollbackMessage,
  signDeviceKey,
  type SignedManifest,
  signMessage,
  SrupDecodeError,
  type SrupMessage,
  statusName,
  toHex,
  UPDATE_FAIL_DIGEST,
  UPDATE_FAIL_FILE,
  UPDATE_REFUSED_ROLLBACK,
  UPDATE_SUCCESS,
  uuidToBytes,
  verifyKeyProof,
  verifyMessage,
} from "../srup/mod.ts";
import { type Logger, silentLogger } from "../obs/log.ts";
import { RejectionCounter, type RejectReason } from "../mqtt/rejections.ts";
import { deviceTopic, serverIdFromPublicKey, serverTopic } from "../mqtt/topics.ts";
import { type Clock, wallClock } from "../io/clock.ts";
import { DEFAULT_FETCH_LIMITS, fetchArtifact, type FetchLimits } from "./fetch_artifact.ts";
import {
  type AgentState,
  type ArtifactRecord,
  type DeviceStatus,
  deviceStatus,
  freeSlot,
} from "./state.ts";
import type { DeviceStore } from "./store.ts";
import { checkRelease, CLOCK_FLOOR_MS } from "./release_check.ts";
import { type DeviceKeyStore, MemoryKeyStore } from "./key_store.ts";
import { applyKeySet, trustedReleaseKeys } from "./release_keys.ts";

/** Sends a frame to the broker; resolves once it is handed over (or acknowledged). */
export type PublishFrame = (topic: string, frame: Uint8Array) => Promise<void>;

/** Options for {@linkcode createDeviceAgent}. */
export interface DeviceAgentOptions {
  deviceId: string;
  /** The device's Ed25519 seed: signs every RESPONSE. */
  privateKey: Uint8Array;
  /** The server's raw Ed25519 public key: only frames it signed are obeyed. */
  serverKey: Uint8Array;
  store: DeviceStore;
  publish: PublishFrame;
  /** Defaults to the first 16 hex characters of SHA-256 over `serverKey`. */
  serverId?: string;
  fetch?: typeof fetch;
  clock?: Clock;
  /** [SRUP-7.3] Release public keys: when any is given, only what one of them signed installs. */
  releaseKeys?: readonly Uint8Array[];
  /** This device's hardware id, matched against a release manifest's hardware list. */
  hardware?: string;
  /**
   * [SRUP-8] Whether the clock can be trusted to say an INITIATE or a release expired; default true
   * (a clock reading before 2025 is never trusted).
   */
  trustClock?: boolean;
  /** Allow plain http downloads from any host, not only loopback. */
  allowHttp?: boolean;
  limits?: Partial<FetchLimits>;
  /** INITIATE tokens remembered to refuse a reuse; the sequence check covers what falls out. */
  tokenHistory?: number;
  /** [SRUP-11.3] Where a proposed key waits for the server's acknowledgment; in memory by default. */
  keys?: DeviceKeyStore;
  /** Counts dropped frames by reason; pass one to share it across agents. */
  rejections?: RejectionCounter;
  logger?: Logger;
}

// A thousand tokens is about 80 KB; version 2 sequence ids refuse older replays anyway.
const DEFAULT_TOKEN_HISTORY = 1000;
// Tokens of DEVICE_KEY proposals still answerable: each resend has its own.
const PROPOSAL_TOKENS = 16;

/** [SRUP-11.3] A key proposed to the server and the tokens of the DEVICE_KEYs that carried it. */
interface PendingKey {
  seed: Uint8Array;
  tokens: string[];
}

// [SRUP-10.2] The longest overlap a KEY_ROTATE can ask for: an old key is retired for a reason, and
// a signed but absurd overlap must not keep it alive for years.
const MAX_KEY_OVERLAP_MS = 30 * 24 * 3_600_000;

/** Loads the agent's state from its store; the agent then handles frames given to handleFrame. */
export async function createDeviceAgent(options: DeviceAgentOptions): Promise<DeviceAgent> {
  const serverId = options.serverId ?? await serverIdFromPublicKey(options.serverKey);
  const state = await options.store.load();
  const next = await (options.keys ?? new MemoryKeyStore()).loadNext();
  return new DeviceAgent(options, serverId, state, next);
}

/** One device agent; see {@linkcode createDeviceAgent}. */
export class DeviceAgent {
  readonly #options: DeviceAgentOptions;
  readonly #target: Uint8Array;
  readonly #sender: string;
  readonly #limits: FetchLimits;
  readonly #logger: Logger;
  readonly #serverId: string;
  #state: AgentState;
  #tail: Promise<void> = Promise.resolve();
  /** The key RESPONSEs are signed with; changes when the server acknowledges a new one. */
  #privateKey: Uint8Array;
  #pending: PendingKey | undefined;
  /** Where a proposed key is kept until acknowledged. */
  readonly keys: DeviceKeyStore;
  /** The device id. */
  readonly deviceId: string;
  /** Where the server's frames arrive: `SRUP/<device-id>`. */
  readonly topic: string;
  /** Where RESPONSEs go: `SRUP/servers/<server-id>/<device-id>`. */
  readonly replyTopic: string;
  /** Frames dropped, by reason. */
  readonly rejections: RejectionCounter;

  /** Use {@linkcode createDeviceAgent}, which loads the state and any proposed key (`next`). */
  constructor(
    options: DeviceAgentOptions,
    serverId: string,
    state: AgentState,
    next?: Uint8Array,
  ) {
    this.#options = options;
    this.deviceId = options.deviceId.toLowerCase();
    this.#target = uuidToBytes(this.deviceId);
    this.#sender = toHex(options.serverKey);
    this.#limits = { ...DEFAULT_FETCH_LIMITS, ...options.limits };
    this.#logger = options.logger ?? silentLogger;
    this.#state = state;
    this.#serverId = serverId;
    this.topic = deviceTopic(this.deviceId);
    this.replyTopic = serverTopic(serverId, this.deviceId);
    this.rejections = options.rejections ?? new RejectionCounter();
    this.#privateKey = options.privateKey;
    this.keys = options.keys ?? new MemoryKeyStore();
    this.#pending = next && { seed: next, tokens: [] };
  }

  /** The proposed key (32-byte seed) awaiting the server's acknowledgment, if any. */
  get pendingKey(): Uint8Array | undefined {
    return this.#pending?.seed;
  }

  /**
   * [SRUP-11.3] Starts a key rotation: keeps `seed` (a fresh one by default) as the proposed key,
   * durably, then sends it in a DEVICE_KEY signed by the current key. RESPONSEs stay signed by the
   * current key until the server acknowledges; resolves with the proposed key's seed.
   */
  rotateKey(seed: Uint8Array = randomPrivateKey()): Promise<Uint8Array> {
    return this.#serially(async () => {
      await this.keys.saveNext(seed);
      this.#pending = { seed, tokens: [] };
      await this.#propose();
      return seed;
    });
  }

  /** [SRUP-11.3] Sends the proposed key again, if one waits for acknowledgment (at start). */
  proposeKey(): Promise<void> {
    return this.#serially(() => this.#propose());
  }

  /** Runs `task` after the frames and tasks before it, like a frame. */
  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    this.#tail = run.then(() => {}, () => {});
    return run;
  }

  /** Handles one frame from the device topic, after those before it; never rejects. */
  handleFrame(frame: Uint8Array): Promise<void> {
    // One frame at a time: every decision reads the state the previous frame left.
    const run = this.#tail.then(() => this.#handle(frame)).catch((error) => {
      this.#logger.error("frame.failed", { device: this.deviceId, error: String(error) });
    });
    this.#tail = run;
    return run;
  }

  /** Resolves once every frame handed over so far has been handled. */
  idle(): Promise<void> {
    return this.#tail;
  }

  /** Digests of the active and previous artifacts and any staged token. */
  status(): DeviceStatus {
    return deviceStatus(this.deviceId, this.#state);
  }

  /** [SRUP-10] The server key this device trusts now: the provisioned one until a KEY_ROTATE. */
  serverKey(): Uint8Array {
    const { serverKey } = this.#state;
    return serverKey === undefined ? this.#options.serverKey : fromHex(serverKey);
  }

  async #handle(frame: Uint8Array): Promise<void> {
    let message: SrupMessage;
    try {
      message = decodeMessage(frame);
    } catch (error) {
      if (!(error instanceof SrupDecodeError)) throw error;
      return this.#reject(error.code, { offset: error.offset });
    }
    if (message.type === "response" || message.type === "device_key") {
      return this.#reject("unexpected_type", { type: message.type });
    }
    if (message.type === "key_rotate") return await this.#keyRotate(message);
    // [SRUP-5.1] Verified before any replay counter moves: a forged frame must not lock anyone out.
    if (!await this.#verified(message)) {
      return this.#reject("bad_signature", { type: message.type });
    }
    if (message.type === "release_keys") return await this.#releaseKeys(message);
    if (message.type === "activate" && this.#pending?.tokens.includes(toHex(message.token))) {
      return await this.#keyAcknowledged(message);
    }
    // [SRUP-11.3] An acknowledgment may have been lost: the proposal goes again before any answer.
    if (this.#pending) await this.#propose();
    if (message.type === "initiate") return await this.#initiate(message);
    if (message.type === "rollback") return await this.#rollback(message);
    return await this.#activate(message);
  }

  /**
   * [SRUP-10.2] Whether the trusted key signed the frame, or, during an overlap, the old key. The
   * first frame under the new key ends the overlap: the server signs this device's frames with
   * the new key from its confirmation on, so an old-key frame after that is stale or forged.
   */
  async #verified(message: SrupMessage): Promise<boolean> {
    const { oldServerKey, oldKeyUntil } = this.#state;
    if (await verifyMessage(message, this.serverKey())) {
      if (oldKeyUntil !== undefined) {
        const closed: AgentState = { ...this.#state, oldKeyUntil: undefined };
        await this.#options.store.save(closed);
        this.#state = closed;
        this.#logger.info("server_key.overlap_closed", {
          device: this.deviceId,
          reason: "new_key",
        });
      }
      return true;
    }
    if (oldServerKey === undefined || oldKeyUntil === undefined) return false;
    if (oldKeyUntil !== null && this.#now() >= oldKeyUntil) return false;
    return await verifyMessage(message, fromHex(oldServerKey));
  }

  /**
   * [SRUP-10] Trusts the server's new key: the frame signed by the key trusted now, the new key's
   * proof bound to this server, device and token. A KEY_ROTATE naming the key already trusted
   * confirms again and changes nothing; one signed by the old key is obeyed only then (a retry
   * whose 0x10 was lost), and moves no counter.
   */
  async #keyRotate(message: KeyRotateMessage): Promise<void> {
    const current = this.serverKey();
    const { oldServerKey } = this.#state;
    const token = toHex(message.token);
    const key = toHex(message.key);
    const byCurrent = await verifyMessage(message, current);
    const byOld = !byCurrent && oldServerKey !== undefined && key === toHex(current) &&
      await verifyMessage(message, fromHex(oldServerKey));
    if (!byCurrent && !byOld) return this.#reject("bad_signature", { type: message.type, token });
    if (!equalBytes(message.target, this.#target)) {
      return this.#reject("wrong_target", { token, target: toHex(message.target) });
    }
    // [SRUP-10.1] The new key signed its own introduction: the server holds its private key.
    if (!await verifyKeyProof(message, this.#serverId)) {
      return this.#reject("bad_key_proof", { token, key });
    }
    if (byOld) {
      if (this.#state.tokens.includes(token)) return this.#reject("token_reused", { token });
      this.#logger.info("server_key.already_trusted", { device: this.deviceId, token, key });
      return await this.#reply(message, ACTIVATE_SUCCESS);
    }
    // A key changes nothing installed: a staged update stays staged.
    const staged = this.#state.staged;
    if (key === toHex(current)) {
      if (await this.#admit(message, (state) => ({ ...state, staged })) === null) return;
      this.#logger.info("server_key.already_trusted", { device: this.deviceId, token, key });
      return await this.#reply(message, ACTIVATE_SUCCESS);
    }
    const overlap = Math.min(Number(message.overlap), MAX_KEY_OVERLAP_MS);
    const now = this.#now();
    const clockTrusted = (this.#options.trustClock ?? true) && now >= CLOCK_FLOOR_MS;
    const admitted = await this.#admit(message, (state) => ({
      ...state,
      staged,
      serverKey: key,
      oldServerKey: toHex(current),
      // An untrusted clock cannot time the overlap: it lasts until the first new-key frame.
      oldKeyUntil: overlap === 0 ? undefined : clockTrusted ? now + overlap : null,
    }));
    if (admitted === null) return;
    this.#logger.info("server_key.rotated", {
      device: this.deviceId,
      token,
      key,
      overlapMs: overlap,
    });
    await this.#reply(message, ACTIVATE_SUCCESS);
  }

  #now(): number {
    return (this.#options.clock ?? wallClock).now();
  }

  /**
   * Admits an INITIATE, a ROLLBACK or a KEY_ROTATE: addressed to this device, a token never seen,
   * a sequence id above the last. Records them as seen (with `change` made to the state) before
   * anything is fetched or changed, so a replay is refused even after a kill; a staged update is
   * given up (a new INITIATE overwrites its slot). Returns the token in hex, or null when the frame
   * was rejected.
   */
  async #admit(
    message: InitiateMessage | RollbackMessage | KeyRotateMessage,
    change: (state: AgentState) => AgentState = (state) => state,
  ): Promise<string | null> {
    const token = toHex(message.token);
    if (!equalBytes(message.target, this.#target)) {
      this.#reject("wrong_target", { token, target: toHex(message.target) });
      return null;
    }
    if (this.#state.tokens.includes(token)) {
      this.#reject("token_reused", { token });
      return null;
    }
    if (!this.#sequenceAbove(message)) {
      this.#reject("replay", { token, sequence: message.sequence });
      return null;
    }
    const accepted = change(this.#accepted(message, token));
    await this.#options.store.save(accepted);
    this.#state = accepted;
    return token;
  }

  async #initiate(message: InitiateMessage): Promise<void> {
    const token = await this.#admit(message);
    if (token === null) return;
    this.#logger.info("initiate.accepted", { device: this.deviceId, token, url: message.url });
    const running = this.#state.current;
    const check = await checkRelease(message, {
      releaseKeys: trustedReleaseKeys(this.#state, this.#options.releaseKeys ?? []),
      hardware: this.#options.hardware,
      trustClock: this.#options.trustClock ?? true,
      now: (this.#options.clock ?? wallClock).now(),
      runningSecurityVersion: running?.securityVersion ?? 0,
    });
    if (!check.ok) {
      this.#logger.warn("initiate.refused", {
        device: this.deviceId,
        token,
        status: statusName(check.status),
        reason: check.reason,
      });
      return await this.#reply(message, check.status);
    }
    if (running?.digest === toHex(message.digest)) {
      return await this.#stageRunning(message, running);
    }
    const status = await this.#download(message, token, check.manifest);
    await this.#reply(message, status);
  }

  /** The state with this frame's token and sequence recorded and nothing staged. */
  #accepted(message: SrupMessage, token?: string): AgentState {
    const sequences = new Map(this.#state.sequences);
    if (message.sequence !== undefined) sequences.set(this.#sender, message.sequence);
    const limit = this.#options.tokenHistory ?? DEFAULT_TOKEN_HISTORY;
    const tokens = token === undefined ? this.#state.tokens : [...this.#state.tokens, token];
    return {
      ...this.#state,
      sequences,
      tokens: tokens.length > limit ? tokens.slice(tokens.length - limit) : tokens,
      staged: token === undefined ? this.#state.staged : undefined,
    };
  }

  /**
   * Told to stage what it already runs: nothing to fetch, and no slot to give up (a download would
   * overwrite the rollback copy's neighbour and the switch would drop the rollback copy itself).
   * The running artifact is staged under the new token; its ACTIVATE keeps every slot.
   */
  async #stageRunning(message: InitiateMessage, running: ArtifactRecord): Promise<void> {
    const token = toHex(message.token);
    const next = { ...this.#state, staged: { ...running, token } };
    try {
      await this.#options.store.save(next);
    } catch (error) {
      this.#logger.error("download.store_failed", { device: this.deviceId, error: String(error) });
      return await this.#reply(message, UPDATE_FAIL_FILE);
    }
    this.#state = next;
    this.#logger.info("download.already_running", { device: this.deviceId, token });
    await this.#reply(message, UPDATE_SUCCESS);
  }

  async #download(
    message: InitiateMessage,
    token: string,
    manifest?: SignedManifest,
  ): Promise<number> {
    const slot = freeSlot(this.#state);
    const { store } = this.#options;
    let writer;
    try {
      writer = await store.openSlot(slot);
    } catch (error) {
      this.#logger.error("download.store_failed", { device: this.deviceId, error: String(error) });
      return UPDATE_FAIL_FILE;
    }
    const outcome = await fetchArtifact(message.url, {
      fetch: this.#options.fetch ?? fetch,
      clock: this.#options.clock ?? wallClock,
      // [SRUP-7.5] The signed size bounds the download: not one byte more is read.
      limits: manifest
        ? { ...this.#limits, maxBytes: Math.min(this.#limits.maxBytes, manifest.size) }
        : this.#limits,
      allowHttp: this.#options.allowHttp ?? false,
      writer,
    });
    if (!outcome.ok) {
      await writer.abort();
      this.#logger.warn("download.failed", {
        device: this.deviceId,
        token,
        status: statusName(outcome.status),
        reason: outcome.reason,
      });
      return outcome.status;
    }
    if (!equalBytes(outcome.digest, message.digest)) {
      await writer.abort();
      this.#logger.warn("download.failed", {
        device: this.deviceId,
        token,
        status: statusName(UPDATE_FAIL_DIGEST),
        reason: "digest_mismatch",
        digest: toHex(outcome.digest),
      });
      return UPDATE_FAIL_DIGEST;
    }
    const staged: ArtifactRecord = {
      slot,
      token,
      digest: toHex(outcome.digest),
      size: outcome.size,
    };
    if (manifest) staged.securityVersion = manifest.securityVersion;
    try {
      await writer.close();
      const next = { ...this.#state, staged };
      await store.save(next);
      this.#state = next;
    } catch (error) {
      this.#logger.error("download.store_failed", { device: this.deviceId, error: String(error) });
      return UPDATE_FAIL_FILE;
    }
    this.#logger.info("download.staged", { device: this.deviceId, token, size: outcome.size });
    return UPDATE_SUCCESS;
  }

  async #activate(message: ActivateMessage): Promise<void> {
    const token = toHex(message.token);
    const { current, staged } = this.#state;
    // A redelivered or resent ACTIVATE for what is already active confirms again and changes
    // nothing, even with a sequence id already seen: the reply only restates the truth.
    if (current?.token === token) {
      if (this.#sequenceAbove(message)) {
        const next = this.#accepted(message);
        await this.#options.store.save(next);
        this.#state = next;
      }
      this.#logger.info("activate.repeated", { device: this.deviceId, token });
      return await this.#reply(message, ACTIVATE_SUCCESS);
    }
    if (!this.#sequenceAbove(message)) {
      return this.#reject("replay", { token, sequence: message.sequence });
    }
    if (staged?.token !== token) return this.#reject("unknown_token", { token });
    if (current !== undefined && staged.slot === current.slot) {
      // The staged artifact is the one running: confirm under the new token, slots unchanged.
      const same: AgentState = { ...this.#accepted(message), current: staged, staged: undefined };
      try {
        await this.#options.store.save(same);
      } catch (error) {
        this.#logger.error("activate.failed", {
          device: this.deviceId,
          token,
          error: String(error),
        });
        return await this.#reply(message, ACTIVATE_FAIL);
      }
      this.#state = same;
      this.#logger.info("activate.already_running", { device: this.deviceId, token });
      return await this.#reply(message, ACTIVATE_SUCCESS);
    }
    const next: AgentState = {
      ...this.#accepted(message),
      current: staged,
      previous: current,
      staged: undefined,
    };
    try {
      await this.#options.store.activate(next);
    } catch (error) {
      this.#logger.error("activate.failed", { device: this.deviceId, token, error: String(error) });
      return await this.#reply(message, ACTIVATE_FAIL);
    }
    this.#state = next;
    this.#logger.info("activate.switched", { device: this.deviceId, token, digest: staged.digest });
    await this.#reply(message, ACTIVATE_SUCCESS);
  }

  /**
   * [SRUP-9] Goes back to the previous version when it is the one the server names; answers 0x10
   * again when that version already runs (a retry whose first answer was lost), 0x1E otherwise,
   * and 0xFA when the previous version's security version is below the running one's.
   */
  async #rollback(message: RollbackMessage): Promise<void> {
    const token = await this.#admit(message);
    if (token === null) return;
    const digest = toHex(message.digest);
    const { current, previous } = this.#state;
    if (current?.digest === digest) {
      this.#logger.info("rollback.already_running", { device: this.deviceId, token, digest });
      return await this.#reply(message, ACTIVATE_SUCCESS);
    }
    if (current === undefined || previous?.digest !== digest) {
      this.#logger.warn("rollback.unavailable", {
        device: this.deviceId,
        token,
        digest,
        previous: previous?.digest ?? null,
      });
      return await this.#reply(message, ROLLBACK_UNAVAILABLE);
    }
    // [SRUP-7.4] A ROLLBACK is no way around anti-rollback: the server's key alone must not take a
    // device back to a release with a lower security version.
    if ((previous.securityVersion ?? 0) < (current.securityVersion ?? 0)) {
      this.#logger.warn("rollback.refused", {
        device: this.deviceId,
        token,
        reason: "security_version_downgrade",
        from: current.securityVersion,
        to: previous.securityVersion ?? 0,
      });
      return await this.#reply(message, UPDATE_REFUSED_ROLLBACK);
    }
    const next: AgentState = { ...this.#state, current: previous, previous: current };
    try {
      await this.#options.store.activate(next);
    } catch (error) {
      this.#logger.error("rollback.failed", { device: this.deviceId, token, error: String(error) });
      return await this.#reply(message, ACTIVATE_FAIL);
    }
    this.#state = next;
    this.#logger.info("rollback.switched", { device: this.deviceId, token, digest });
    await this.#reply(message, ACTIVATE_SUCCESS);
  }

  /** [SRUP-5] Whether a version 2 frame's sequence id is above the last one accepted. */
  #sequenceAbove(message: SrupMessage): boolean {
    if (message.sequence === undefined) return true;
    const last = this.#state.sequences.get(this.#sender);
    return last === undefined || message.sequence > last;
  }

  /** Signs and sends a RESPONSE in the version of the frame it answers. */
  async #reply(request: SrupMessage, status: number): Promise<void> {
    const version = request.version;
    const sequence = version === 1 ? undefined : await this.#options.store.nextSequence();
    const unsigned: ResponseMessage = {
      type: "response",
      version,
      sequence,
      token: request.token,
      status,
      signature: new Uint8Array(),
    };
    const response = await signMessage(unsigned, this.#privateKey);
    const fields = {
      device: this.deviceId,
      token: toHex(request.token),
      status: statusName(status),
    };
    try {
      await this.#options.publish(this.replyTopic, encodeMessage(response));
      this.#logger.info("response.sent", fields);
    } catch (error) {
      this.#logger.error("response.failed", { ...fields, error: String(error) });
    }
  }

  /** [SRUP-11] Sends the proposed key in a DEVICE_KEY signed by the current one. */
  async #propose(): Promise<void> {
    const pending = this.#pending;
    if (!pending) return;
    const token = newToken();
    const message = await signDeviceKey({
      oldPrivateKey: this.#privateKey,
      newPrivateKey: pending.seed,
      sequence: await this.#options.store.nextSequence(),
      token,
    });
    pending.tokens = [...pending.tokens, toHex(token)].slice(-PROPOSAL_TOKENS);
    const fields = { device: this.deviceId, token: toHex(token), sequence: message.sequence };
    try {
      await this.#options.publish(this.replyTopic, encodeMessage(message));
      this.#logger.info("key.proposed", fields);
    } catch (error) {
      this.#logger.error("key.propose_failed", { ...fields, error: String(error) });
    }
  }

  /**
   * [SRUP-11.3] The server's ACTIVATE of a proposal's token: it recorded the new key, so the
   * device switches to it, durably first, and signs every RESPONSE with it from now on.
   */
  async #keyAcknowledged(message: ActivateMessage): Promise<void> {
    const token = toHex(message.token);
    if (!this.#sequenceAbove(message)) {
      return this.#reject("replay", { token, sequence: message.sequence });
    }
    const seed = this.#pending!.seed;
    await this.keys.commitNext(seed);
    this.#privateKey = seed;
    this.#pending = undefined;
    const next = this.#accepted(message);
    await this.#options.store.save(next);
    this.#state = next;
    this.#logger.info("key.rotated", { device: this.deviceId, token });
  }

  /** [SRUP-12.3] Learns the release key set a RELEASE_KEYS carries, if it follows the trusted one. */
  async #releaseKeys(message: ReleaseKeysMessage): Promise<void> {
    const token = toHex(message.token);
    if (!equalBytes(message.target, this.#target)) {
      return this.#reject("wrong_target", { token, target: toHex(message.target) });
    }
    if (!this.#sequenceAbove(message)) {
      return this.#reject("replay", { token, sequence: message.sequence });
    }
    const outcome = await applyKeySet(this.#state, this.#options.releaseKeys ?? [], message.keySet);
    if (!outcome.ok && outcome.reason !== "stale") {
      return this.#reject("key_set_refused", { token, why: outcome.reason });
    }
    const next = {
      ...this.#accepted(message),
      ...(outcome.ok ? { releaseKeySet: outcome.set } : {}),
    };
    await this.#options.store.save(next);
    this.#state = next;
    if (outcome.ok) {
      this.#logger.info("release_keys.trusted", {
        device: this.deviceId,
        version: outcome.set.version,
        keys: outcome.set.keys.length,
      });
    }
  }

  #reject(reason: RejectReason, fields: Record<string, unknown>): void {
    this.rejections.add(reason);
    this.#logger.warn("frame.rejected", { device: this.deviceId, reason, ...fields });
  }
}
