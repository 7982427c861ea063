/**
 * One live rollout: the engine, its ports made durable through the group-commit writer, and sends
 * over the server link only once what they depend on is committed.
 */
import {
  type Clock,
  createRolloutEngine,
  describeHaltReason,
  type DeviceRolloutEvent,
  isDeviceEvent,
  isFinal,
  isFinalDevice,
  type RolloutEngine,
  type RolloutEvent,
  type RolloutSnapshot,
  rolloutStateOf,
  ROW_STATE_OF,
} from "../actors/mod.ts";
import {
  describeDatabaseError,
  type GroupCommitWriter,
  type RolloutDeviceRow,
  type WriteOp,
} from "../db/mod.ts";
import type { Policy } from "../policies/mod.ts";
import { type InitiateFields, type ServerLink, WithheldSendError } from "../mqtt/mod.ts";
import type { RolloutLease } from "./cluster.ts";
import { toHex } from "../srup/mod.ts";

/** What a runner needs. */
export interface RolloutRunnerOptions {
  id: string;
  policy: Policy;
  /** Target device ids in rollout order (position = index). */
  devices: readonly string[];
  /** How many of `devices`, at the end, joined after creation (dynamic targets). */
  joined?: number;
  /**
   * What an update installs (`manifest`: the signed release manifest, sent in version 3 to devices
   * that speak it); null for a rollback.
   */
  artifact: { url: string; digest: string; manifest?: Uint8Array } | null;
  /**
   * A rollback's digests, one per device in rollout order (null for a skipped device): what each
   * ROLLBACK names and what a device's 0x10 records as its current version.
   */
  rollback?: readonly (string | null)[];
  /**
   * [SRUP-10] A key rotation: the next key each device is sent in a KEY_ROTATE, and the overlap;
   * a device's 0x10 records it as trusting that key.
   */
  keyRotation?: KeyRotation;
  /** [SRUP-10] Told when a device confirms the rotation, before its row is written. */
  onKeyConfirmed?: (device: string, fingerprint: string) => void;
  /** [SRUP-2.1] The frame version a device speaks; default 2 for all. */
  frameVersion?: (device: string) => number;
  writer: GroupCommitWriter;
  link: ServerLink;
  clock: Clock;
  /** A restored snapshot (crash recovery); without one the rollout starts afresh. */
  snapshot?: RolloutSnapshot;
  /** Makes a fresh token for each INITIATE; default srup's `newToken()`. */
  token?: () => Uint8Array;
  /** Devices skipped at creation: they already run the artifact. */
  skip?: readonly string[];
  /** Maintenance windows by tag value: each device's window group. */
  windowGroups?: Uint8Array;
  /** Told once when the rollout reaches a final state. */
  onFinished?: (runner: RolloutRunner) => void;
  /**
   * Cluster mode: the lease this node holds. Every write is conditional on its epoch, and nothing
   * is published once it may have lapsed.
   */
  lease?: RolloutLease;
  log?: (line: string) => void;
}

/** [SRUP-10] What a key rotation sends: the next key (its seed signs the proof) and the overlap. */
export interface KeyRotation {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
  fingerprint: string;
  /** Milliseconds devices still accept the old key (the policy's keyOverlap; 0 by default). */
  overlap: number;
}

const DIGEST_BYTES = 32;

/** Digests (hex, null for none) packed into one buffer: 32 bytes a device, not a string each. */
function packDigests(digests: readonly (string | null)[]): Uint8Array {
  const packed = new Uint8Array(digests.length * DIGEST_BYTES);
  digests.forEach((digest, index) => {
    if (digest !== null) packed.set(Uint8Array.fromHex(digest), index * DIGEST_BYTES);
  });
  return packed;
}

// The rollout-level head is written at most this often while devices move, and at once on every
// rollout transition; recovery takes the device rows as the truth and the head for the rest.
const HEAD_EVERY_MS = 250;

/** Drives one rollout live. */
export class RolloutRunner {
  readonly id: string;
  readonly engine: RolloutEngine;
  readonly #devices: string[];
  readonly #positions = new Map<string, number>();
  readonly #lastStatus = new Map<string, number>();
  readonly #writer: GroupCommitWriter;
  readonly #link: ServerLink;
  readonly #clock: Clock;
  readonly #url: string;
  readonly #digest: Uint8Array;
  readonly #digestHex: string;
  /** A rollback's 32-byte digests, packed by position; null for an update. */
  readonly #rollback: Uint8Array | null;
  readonly #manifest: Uint8Array | undefined;
  readonly #keyRotation: KeyRotation | undefined;
  readonly #onKeyConfirmed?: (device: string, fingerprint: string) => void;
  readonly #frameVersion: (device: string) => number;
  readonly #onFinished?: (runner: RolloutRunner) => void;
  readonly #log: (line: string) => void;
  readonly #timeouts: Policy["timeouts"];
  readonly #lease: RolloutLease | undefined;
  /** The last write queued: a send waits for it, so everything before the send is committed. */
  #barrier: Promise<void> = Promise.resolve();
  #headDirty = false;
  #headScheduled = false;
  #headWrittenAt = 0;
  #finished = false;
  #stopped = false;
  #unwritten = 0;
  /** Sends waiting for their commit, so shutdown can let them finish. */
  readonly #sending = new Set<Promise<void>>();

  constructor(options: RolloutRunnerOptions) {
    this.id = options.id;
    this.#devices = [...options.devices];
    options.devices.forEach((id, index) => this.#positions.set(id, index));
    this.#writer = options.writer;
    this.#link = options.link;
    this.#clock = options.clock;
    this.#url = options.artifact?.url ?? "";
    this.#digestHex = options.artifact?.digest ?? "";
    this.#digest = Uint8Array.fromHex(this.#digestHex);
    this.#manifest = options.artifact?.manifest;
    this.#frameVersion = options.frameVersion ?? (() => 2);
    this.#rollback = options.rollback ? packDigests(options.rollback) : null;
    this.#keyRotation = options.keyRotation;
    this.#onKeyConfirmed = options.onKeyConfirmed;
    if (!options.artifact && !this.#rollback && !this.#keyRotation) {
      throw new TypeError(
        `Cannot run rollout "${options.id}": no artifact, no rollback digests and no key rotation`,
      );
    }
    this.#onFinished = options.onFinished;
    this.#log = options.log ?? ((line) => console.error(line));
    this.#timeouts = options.policy.timeouts;
    this.#lease = options.lease;
    if (options.snapshot) {
      for (const record of options.snapshot.devices) {
        if (record.lastStatus !== null) this.#lastStatus.set(record.id, record.lastStatus);
      }
    }
    this.engine = createRolloutEngine({
      id: options.id,
      policy: options.policy,
      devices: options.devices,
      joined: options.joined,
      clock: options.clock,
      snapshot: options.snapshot,
      token: options.token,
      skip: options.skip,
      action: this.#keyRotation ? "rotate-key" : this.#rollback ? "rollback" : "update",
      windowGroups: options.windowGroups,
      ports: {
        initiate: (device, token, attempt) => this.#send(device, token, "initiate", attempt),
        activate: (device, token) => this.#send(device, token, "activate", 0),
        event: (event) => this.#onEvent(event),
      },
    });
  }

  /** Target device ids in rollout order, joined ones last. */
  get devices(): readonly string[] {
    return this.#devices;
  }

  /** Whether the device is one of this rollout's. */
  has(device: string): boolean {
    return this.#positions.has(device);
  }

  /**
   * Adds a device whose row `joinRollout()` wrote at `position` (dynamic targets), in its window
   * group if the policy has windows by tag: it is started when the last stage dispatches, at once
   * if it does now. RolloutCommandError when the engine takes no device any more.
   */
  join(
    device: string,
    joined: { position: number; skipped: boolean; windowGroup?: number },
  ): void {
    // Known first: the engine may send to it, and record its row, before join() returns.
    this.#positions.set(device, joined.position);
    try {
      this.engine.join(device, joined);
    } catch (error) {
      this.#positions.delete(device);
      throw error;
    }
    this.#devices.push(device);
    this.#markHead(true);
    this.#afterEngine();
  }

  /** Starts, or resumes after a restore (re-sending ACTIVATEs whose confirmation was never recorded). */
  start(): void {
    const restored = this.engine.state !== "created";
    this.engine.start();
    if (restored) {
      const resent = this.engine.resendPendingActivations();
      if (resent > 0) this.#log(`rollout ${this.id}: re-sent ${resent} ACTIVATE(s) after restart`);
    }
    this.#markHead(true);
  }

  /**
   * Hands the engine a verified RESPONSE; false, and the engine is not told, when its token is not
   * one this rollout issued to that device.
   */
  response(device: string, token: Uint8Array, status: number): boolean {
    const index = this.#positions.get(device);
    if (index === undefined || !this.engine.issued(device, index, token)) return false;
    if (this.#stopped) return true;
    this.engine.response(device, token, status);
    this.#afterEngine();
    return true;
  }

  /** Runs an operator command against the engine (RolloutCommandError when it does not apply). */
  command(name: "pause" | "resume" | "cancel" | "promote"): void {
    this.engine[name]();
    // Written now, not at the next head flush (which may wait HEAD_EVERY_MS): the caller's
    // `written()` then covers what the command did.
    this.#headDirty = true;
    this.#writeHead();
    this.#afterEngine();
  }

  /**
   * Stops at once without writing anything more: another node owns the rollout now. Sends already
   * under way are withheld by the lease's check.
   */
  abandon(): void {
    this.#stopped = true;
    this.engine.stop();
  }

  /** Stops timers and actors without changing the rollout, as on shutdown; waits for sends. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#writeHead();
    this.engine.stop();
    await Promise.allSettled([...this.#sending]);
  }

  #afterEngine(): void {
    if (!this.#finished && isFinal(this.engine.state)) {
      this.#finished = true;
      this.#writeHead();
      this.#onFinished?.(this);
    }
  }

  /** Whether the engine is final but some of its writes have not landed (database unavailable). */
  get finalPending(): boolean {
    return isFinal(this.engine.state) && this.#unwritten > 0;
  }

  #write(op: WriteOp): Promise<void> {
    const written = this.#writer.enqueue(op, { fence: this.#lease?.fence });
    this.#unwritten++;
    // Failures are logged by the writer; a send waiting on this write is dropped (see #send).
    written.catch(() => {}).finally(() => this.#unwritten--);
    this.#barrier = written;
    return written;
  }

  #send(device: string, token: Uint8Array, kind: "initiate" | "activate", attempt: number): void {
    const copy = token.slice();
    // The engine emits the event that records this token before it calls the port (each device
    // state reports, then sends), so that row's write is already behind the barrier taken here.
    {
      const sending = this.#barrier.then(
        async () => {
          if (this.#stopped || !this.engine.shouldSend(device, copy)) return;
          const lease = this.#lease;
          // The engine's timeout retries it, once the lease is renewed (or another node's is).
          if (lease && !lease.valid()) return;
          const options = lease ? { mayPublish: () => !this.#stopped && lease.valid() } : {};
          try {
            if (kind === "initiate" && this.#keyRotation) {
              await this.#link.sendKeyRotate(device, {
                token: copy,
                key: this.#keyRotation.publicKey,
                keyPrivate: this.#keyRotation.privateKey,
                overlap: this.#keyRotation.overlap,
              }, options);
            } else if (kind === "initiate" && this.#rollback) {
              await this.#link.sendRollback(device, {
                token: copy,
                digest: this.#rollbackOf(device),
              }, options);
            } else if (kind === "initiate") {
              await this.#link.sendInitiate(device, this.#initiateFields(device, copy), options);
            } else {
              await this.#link.sendActivate(device, { token: copy }, options);
            }
          } catch (error) {
            if (error instanceof WithheldSendError) return;
            // The engine's timeout for this device retries it.
            this.#log(
              `rollout ${this.id}: cannot send ${this.#frameName(kind)} to ${device}` +
                `${attempt ? ` (attempt ${attempt})` : ""}: ${describeDatabaseError(error)}`,
            );
          }
        },
        () =>
          this.#log(
            `rollout ${this.id}: ${
              this.#frameName(kind)
            } to ${device} not sent: its state was not committed`,
          ),
      );
      this.#sending.add(sending);
      sending.finally(() => this.#sending.delete(sending));
    }
  }

  /**
   * [SRUP-7] [SRUP-8] A device that speaks version 3 gets the manifest and a not-after time: the
   * response timeout from now, past which the engine retries with a fresh INITIATE anyway.
   */
  #initiateFields(device: string, token: Uint8Array): InitiateFields {
    const fields = { token, url: this.#url, digest: this.#digest };
    if (!this.#manifest || this.#frameVersion(device) < 3) return fields;
    const notAfter = BigInt(this.#clock.now() + this.#timeouts.response);
    return { ...fields, manifest: this.#manifest, notAfter };
  }

  #onEvent(event: RolloutEvent): void {
    const device = isDeviceEvent(event) ? event : null;
    if (device) this.#deviceRow(device);
    const { type, rollout: _rollout, at, ...fields } = event;
    const { device: _device, ...data } = fields as typeof fields & { device?: string };
    this.#write({
      kind: "event",
      event: {
        rolloutId: this.id,
        deviceId: device?.device ?? null,
        type,
        data,
        at: new Date(at),
      },
    });
    if (device?.type === "device.activated" && this.#keyRotation) {
      // [SRUP-10] Signed with the new key from now on: the device said it trusts it.
      const { fingerprint } = this.#keyRotation;
      this.#onKeyConfirmed?.(device.device, fingerprint);
      this.#write({ kind: "server_key", deviceId: device.device, fingerprint, rolloutId: this.id });
    } else if (device?.type === "device.activated") {
      this.#write({
        kind: "activation",
        deviceId: device.device,
        // A rollback's 0x10: the previous digest is current again (and the old current previous).
        digest: this.#rollback ? toHex(this.#rollbackOf(device.device)) : this.#digestHex,
        rolloutId: this.id,
      });
    }
    if (device?.type === "device.timed_out") {
      const waited = this.#timeouts[device.missing];
      if (this.#link.timedOut(device.device, waited)) {
        this.#log(
          `rollout ${this.id}: RESPONSEs stalled: ${device.device} timed out after ${waited} ms and no device answered meanwhile, though the broker connection was up`,
        );
      }
    }
    this.#markHead(device === null);
  }

  /** The digest a rollback sends `device` back to. */
  #rollbackOf(device: string): Uint8Array {
    const at = this.#positions.get(device)! * DIGEST_BYTES;
    return this.#rollback!.subarray(at, at + DIGEST_BYTES);
  }

  #frameName(kind: "initiate" | "activate"): string {
    if (kind === "activate") return "ACTIVATE";
    return this.#keyRotation ? "KEY_ROTATE" : this.#rollback ? "ROLLBACK" : "INITIATE";
  }

  /** Resolves once every write queued so far has landed (or failed). */
  written(): Promise<void> {
    return this.#barrier.catch(() => {});
  }

  #deviceRow(event: DeviceRolloutEvent): void {
    const state = ROW_STATE_OF[event.type];
    // timed_out is momentary: the retrying or failed event that follows carries the row.
    if (state === null) return;
    const device = event.device;
    if ("status" in event && event.status !== null) this.#lastStatus.set(device, event.status);
    const row: RolloutDeviceRow = {
      rolloutId: this.id,
      deviceId: device,
      position: this.#positions.get(device)!,
      state,
      token: event.token,
      attempt: event.attempt,
      deadline: "deadline" in event ? event.deadline : null,
      lastStatus: this.#lastStatus.get(device) ?? null,
    };
    if (isFinalDevice(state)) {
      this.#lastStatus.delete(device);
      row.deadline = null;
    }
    this.#write({ kind: "rollout_device", row });
  }

  #markHead(now: boolean): void {
    this.#headDirty = true;
    if (this.#headScheduled) return;
    this.#headScheduled = true;
    const wait = now ? 0 : Math.max(0, this.#headWrittenAt + HEAD_EVERY_MS - this.#clock.now());
    const flush = () => {
      this.#headScheduled = false;
      if (!this.#stopped) this.#writeHead();
    };
    // The engine's state settles when the call that emitted the event returns: write after it.
    if (wait === 0) queueMicrotask(flush);
    else this.#clock.setTimeout(flush, wait);
  }

  #writeHead(): void {
    if (!this.#headDirty) return;
    this.#headDirty = false;
    this.#headWrittenAt = this.#clock.now();
    const summary = this.engine.summary();
    this.#write({
      kind: "rollout",
      id: this.id,
      patch: {
        state: rolloutStateOf(summary.state),
        stage: summary.stage,
        haltReason: summary.haltReason ? describeHaltReason(summary.haltReason) : null,
        haltDevice: summary.haltReason?.kind === "digest_mismatch"
          ? summary.haltReason.device
          : null,
        snapshot: this.engine.snapshot({ devices: false }),
      },
    });
  }
}
