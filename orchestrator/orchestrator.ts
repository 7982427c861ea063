/** Every live rollout of this service: creation, operator commands, RESPONSE routing, recovery. */
import {
  type Clock,
  isFinal,
  type RolloutAction,
  RolloutCommandError,
  type RolloutSnapshot,
  snapshotFromRows,
} from "../actors/mod.ts";
import {
  ACTIVE_ROLLOUT_STATES,
  countRotationSkips,
  createRollout,
  type Db,
  describeDatabaseError,
  getArtifact,
  getRollout,
  type GroupCommitWriter,
  joinRollout,
  leaveRollout,
  listActiveRollouts,
  listHaltedWithoutRollback,
  listRollbackDigests,
  listRolloutDeviceIds,
  loadFrameVersions,
  loadPublicKeys,
  loadServerKeys,
  loadStartedRolloutDevices,
  moveRollout,
  type Rollout,
  SKIPPED,
} from "../db/mod.ts";
import type { ServerLink } from "../mqtt/mod.ts";
import { type LoadedPolicy, type Policy, windowGrouper } from "../policies/mod.ts";
import { newToken, type ResponseMessage, toHex } from "../srup/mod.ts";
import { type KeyRotation, RolloutRunner } from "./rollout_runner.ts";
import type { ServerKeyRing } from "./key_ring.ts";
import { type Cluster, OwnerUnavailableError } from "./cluster.ts";
import type { StoredSequenceTracker } from "./sequence_tracker.ts";
import { wallClock } from "../io/clock.ts";
import { checkHeapRoom, type HeapUsage, v8HeapUsage } from "./heap_budget.ts";
import { describeUnmatched, windowGroupsOf } from "./window_groups.ts";

/** What the orchestrator needs. */
export interface OrchestratorOptions {
  db: Db;
  writer: GroupCommitWriter;
  tracker: StoredSequenceTracker;
  clock?: Clock;
  log?: (line: string) => void;
  /** The JS heap's limit and use, checked before a rollout is created; default V8's own. */
  heap?: () => HeapUsage;
  /** Makes a fresh token for each INITIATE; default srup's `newToken()`. */
  token?: () => Uint8Array;
  /** RESPONSEs held while recovery runs, at most; later ones are dropped (counted and logged). */
  maxEarlyResponses?: number;
  /**
   * [SRUP-7] Release public keys (FLOTILLA_RELEASE_KEYS). With any, a rollout needs an artifact
   * whose manifest one of them signed, unless its policy says `allowUnsigned: true`; with none,
   * manifests are not required (but still sent to devices that speak frame version 3).
   */
  releaseKeys?: readonly Uint8Array[];
  /** [SRUP-10] The server's keys and which one each device trusts; without it no key rotates. */
  keys?: ServerKeyRing;
  /** Cluster mode (PostgreSQL): this node drives only the rollouts whose lease it holds. */
  cluster?: Cluster;
}

/** A new rollout, its devices already resolved. */
export interface RolloutRequest {
  /**
   * `register`: not stored yet, recorded by its url in the rollout's own transaction. Null for a
   * rollback, which sends each device back to its recorded previous version.
   */
  artifact: { digest: string; url: string; register?: boolean } | null;
  /** Default `update`. */
  action?: RolloutAction;
  /** The rollout a rollback undoes. */
  rollbackOf?: string | null;
  /** [SRUP-10] For `rotate-key`: the fingerprint of the next key, which devices are moved to. */
  serverKey?: string;
  loaded: LoadedPolicy;
  /** The selector as the operator wrote it. */
  targets: Record<string, unknown>;
  deviceIds: readonly string[];
  /** Maintenance windows by tag value: each device's window group (see window_groups.ts). */
  windowGroups?: Uint8Array;
  /** The token name that asked for it. */
  actor: string;
  /** Optional words for operators. */
  name?: string | null;
  description?: string | null;
  /** Clock time to start at: a later one creates the rollout `scheduled` until then. */
  startAt?: number | null;
}

/** What starting a runner takes. */
interface RunStart {
  deviceIds: readonly string[];
  /** A rollback's digests by position; undefined for an update. */
  rollback?: readonly (string | null)[];
  skipped: readonly string[];
  /** How many of `deviceIds`, at the end, joined after creation. */
  joined: number;
  policy: Policy;
  link: ServerLink;
  snapshot?: RolloutSnapshot;
  manifest?: Uint8Array;
  windowGroups?: Uint8Array;
}

/** A device as a dynamic rollout's targets see it. */
export interface OfferedDevice {
  id: string;
  tags: Record<string, string>;
}

/** An operator command. */
export type RolloutCommand = "pause" | "resume" | "cancel" | "promote";

// RESPONSEs held during recovery: a reconnecting fleet answers at once, and each held one is ~200
// bytes; the engine's timeouts retry any dropped one.
const MAX_EARLY_RESPONSES = 100_000;

// A finished rollout's runner stays a while, so late confirmations still update devices' digests.
const FINISHED_GRACE_MS = 10 * 60_000;

// A timer waits at most this long (a longer delay overflows JavaScript timers); a scheduled start
// further off re-arms until its time.
const MAX_TIMER_MS = 2 ** 31 - 1;

// A scheduled start the database refused (unavailable) is tried again after this long.
const START_RETRY_MS = 5_000;

/** Runs rollouts. */
export class Orchestrator {
  readonly #db: Db;
  readonly #writer: GroupCommitWriter;
  readonly #tracker: StoredSequenceTracker;
  readonly #clock: Clock;
  readonly #log: (line: string) => void;
  readonly #heap: () => HeapUsage;
  readonly #token: () => Uint8Array;
  readonly #maxEarly: number;
  readonly #runners = new Map<string, RolloutRunner>();
  readonly #byDevice = new Map<string, RolloutRunner>();
  /** Rollouts created `scheduled`, by id, with the timer that starts them. */
  readonly #scheduled = new Map<string, { row: Rollout; timer: unknown }>();
  /** The targets of every dynamic rollout this process runs or has scheduled, by id. */
  readonly #dynamic = new Map<string, Record<string, unknown>>();
  /**
   * Scheduled starts, cancels of scheduled rollouts, and joins run one at a time: a start sees
   * every device that joined before it, and a join an engine refuses is its rollout's last row.
   */
  #serial: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Public keys as stored (base64): a string costs ~64 bytes, a Uint8Array with its buffer ~230. */
  readonly #keys = new Map<string, string>();
  /** [SRUP-2.1] Registered frame versions, for devices that have one (null means 2). */
  readonly #frameVersions = new Map<string, number>();
  /** [SRUP-7] Release public keys; see {@linkcode OrchestratorOptions.releaseKeys}. */
  readonly releaseKeys: readonly Uint8Array[];
  /** [SRUP-10] The server's keys; see {@linkcode OrchestratorOptions.keys}. */
  readonly keys: ServerKeyRing | undefined;
  #link: ServerLink | undefined;
  /** RESPONSEs that arrived before recovery finished, replayed once it has. */
  #early: [string, ResponseMessage][] | null = [];
  #earlyDropped = 0;
  readonly #cluster: Cluster | undefined;
  #ignored = 0;

  constructor(options: OrchestratorOptions) {
    this.#db = options.db;
    this.#writer = options.writer;
    this.#tracker = options.tracker;
    this.#clock = options.clock ?? wallClock;
    this.#log = options.log ?? ((line) => console.error(line));
    this.#heap = options.heap ?? v8HeapUsage;
    this.#token = options.token ?? newToken;
    this.#maxEarly = options.maxEarlyResponses ?? MAX_EARLY_RESPONSES;
    this.releaseKeys = options.releaseKeys ?? [];
    this.keys = options.keys;
    this.#cluster = options.cluster;
  }

  /** Cluster mode: RESPONSEs for devices no rollout of this node drives (another node's). */
  get ignoredResponses(): number {
    return this.#ignored;
  }

  /** RESPONSEs dropped because the recovery buffer was full. */
  get earlyDropped(): number {
    return this.#earlyDropped;
  }

  /** The orchestrator's clock time: what a rollout's start time is measured against. */
  now(): number {
    return this.#clock.now();
  }

  /** Resolves once the scheduled starts and joins queued so far are done. */
  async idle(): Promise<void> {
    await this.#serial.catch(() => {});
  }

  /** Connects the server link; rollouts can run from then on. */
  attach(link: ServerLink): void {
    this.#link = link;
  }

  /** The public key of a device, cached; for the server link. */
  async deviceKey(id: string): Promise<Uint8Array | undefined> {
    let key = this.#keys.get(id);
    if (key === undefined) {
      key = (await loadPublicKeys(this.#db, [id])).get(id);
      if (key === undefined) return undefined;
      this.#keys.set(id, key);
    }
    return Uint8Array.fromBase64(key);
  }

  /** [SRUP-11] A device's new key, once durable: its next RESPONSE is verified with it. */
  adoptKey(id: string, key: string): void {
    this.#keys.set(id, key);
    // The other cluster nodes reload it from the database at their next RESPONSE from the device.
    this.#cluster?.forgetEverywhere(id);
  }

  /**
   * An operator's reset of a device's sequence floor (null: none), recorded as a
   * `device.sequence_reset` event; resolves once durable and in force, with the floor replaced.
   */
  async resetSequence(
    deviceId: string,
    floor: bigint | null,
    actor: { id: string; name: string },
  ): Promise<bigint | null> {
    const at = new Date();
    const previous = await this.#tracker.reset(deviceId, floor, (previous) => ({
      deviceId,
      type: "device.sequence_reset",
      actor: actor.name,
      at,
      data: {
        tokenId: actor.id,
        previous: previous?.toString() ?? null,
        floor: floor?.toString() ?? null,
      },
    }));
    // Every node checks this device's RESPONSEs: the others reload its floor.
    this.#cluster?.forgetEverywhere(deviceId);
    this.#log(
      `device ${deviceId}: sequence floor reset from ${previous ?? "none"} to ${
        floor ?? "none"
      } by "${actor.name}"`,
    );
    return previous;
  }

  /**
   * Forgets a removed device's cached key and sequence id, on every node of a cluster unless
   * `everywhere` is false (another node said so).
   */
  forgetDevice(id: string, everywhere = true): void {
    this.#keys.delete(id);
    this.#frameVersions.delete(id);
    this.keys?.forget(id);
    this.#tracker.forget(id);
    if (everywhere) this.#cluster?.forgetEverywhere(id);
  }

  /** Routes a verified RESPONSE to the rollout driving that device. */
  handleResponse(deviceId: string, message: ResponseMessage): void {
    if (this.#early) {
      if (this.#early.length < this.#maxEarly) {
        this.#early.push([deviceId, message]);
      } else if (this.#earlyDropped++ === 0) {
        this.#log(
          `response from ${deviceId} dropped: ${this.#maxEarly} responses already wait for recovery`,
        );
      }
      return;
    }
    this.#writer.enqueue({ kind: "seen", deviceId, at: new Date() }).catch(() => {});
    const runner = this.#byDevice.get(deviceId);
    if (this.#cluster && (!runner || isFinal(runner.engine.state))) {
      // Every node hears every RESPONSE; the node that owns the device's rollout handles it (a
      // rollout that finished here may still take a late confirmation).
      if (runner?.response(deviceId, message.token, message.status)) return;
      this.#ignored++;
      return;
    }
    if (!runner?.response(deviceId, message.token, message.status)) {
      // Signed by the device, yet for a token no rollout issued it: counted, and logged in brief.
      this.#link?.reject("unknown_token", {
        device: deviceId,
        token: toHex(message.token),
        status: message.status,
        rollout: runner?.id ?? null,
      });
    }
  }

  /** The live runner of a rollout, or undefined once it is gone from memory. */
  runner(id: string): RolloutRunner | undefined {
    return this.#runners.get(id);
  }

  /** Rollouts this process drives or has scheduled, not yet final. */
  activeRollouts(): number {
    let n = this.#scheduled.size;
    for (const runner of this.#runners.values()) if (!isFinal(runner.engine.state)) n++;
    return n;
  }

  /** Devices by state, summed over the rollouts running in this process. */
  deviceCounts(): Record<string, number> {
    const totals: Record<string, number> = {};
    for (const runner of this.#runners.values()) {
      for (const [state, n] of Object.entries(runner.engine.summary().counts)) {
        totals[state] = (totals[state] ?? 0) + n;
      }
    }
    return totals;
  }

  /**
   * Creates a rollout (one transaction) and starts it, or, when its start time is still to come,
   * leaves it `scheduled` and starts it then.
   */
  async create(request: RolloutRequest): Promise<Rollout> {
    const link = this.#requireLink();
    checkHeapRoom(request.deviceIds.length, this.#heap());
    const { policy, provenance } = request.loaded;
    const startAt = request.startAt ?? null;
    const scheduled = startAt !== null && startAt > this.#clock.now();
    const action = request.action ?? "update";
    const artifact = action === "update" ? request.artifact : null;
    if (action === "update" && !artifact) throw new TypeError("Cannot create rollout: no artifact");
    const cluster = this.#cluster;
    const leaseAskedAt = cluster?.mark() ?? 0;
    const row = await createRollout(this.#db, {
      lease: cluster ? { node: cluster.node, ttlMs: cluster.ttlMs } : undefined,
      state: scheduled ? "scheduled" : undefined,
      startAt: scheduled ? new Date(startAt) : null,
      name: request.name ?? null,
      description: request.description ?? null,
      createdBy: request.actor,
      action,
      rollbackOf: request.rollbackOf ?? null,
      serverKey: action === "rotate-key" ? request.serverKey ?? null : null,
      artifactDigest: artifact?.digest ?? null,
      artifactUrl: artifact?.url ?? null,
      policy: policy as unknown as Record<string, unknown>,
      policyName: policy.name,
      policySha256: provenance.sha256,
      policyCommit: provenance.commit,
      targets: request.targets,
      deviceIds: request.deviceIds,
      registerArtifact: artifact?.register
        ? { digest: artifact.digest, url: artifact.url }
        : undefined,
    });
    if (cluster) {
      cluster.adopt(row.id, row.leaseEpoch, leaseAskedAt);
      // Its devices may have had frames from another node's ids: ours come from a newer block.
      await cluster.fresh();
    }
    const skipped = scheduled ? [] : await this.#skipped(row.id);
    const rollback = action === "rollback" && !scheduled
      ? await listRollbackDigests(this.#db, row.id)
      : undefined;
    if (!scheduled) await this.#prepare(request.deviceIds);
    await this.#writer.enqueue({
      kind: "event",
      event: {
        rolloutId: row.id,
        type: "rollout.created",
        actor: request.actor,
        data: {
          devices: request.deviceIds.length,
          skipped: skipped.length,
          policy: policy.name,
          sha256: provenance.sha256,
          commit: provenance.commit,
          dirty: provenance.dirty,
          source: provenance.source,
          artifact: artifact?.digest ?? null,
          action,
          rollbackOf: row.rollbackOf,
          // A rollback skips the devices with no previous version recorded: none to go back to.
          ...(action === "rollback" && skipped.length > 0
            ? { skippedReason: "no_previous_version" }
            : {}),
          // A key rotation skips the devices that trust the key already, and those registered with
          // frame version 1, which has no KEY_ROTATE.
          ...(action === "rotate-key"
            ? { serverKey: row.serverKey, ...await this.#rotationSkips(row.id, skipped.length) }
            : {}),
          startAt: row.startAt?.toISOString() ?? null,
          dynamic: policy.dynamic ?? false,
        },
      },
    });
    if (scheduled) {
      this.#schedule(row);
      return row;
    }
    const windowGroups = request.windowGroups ??
      (await windowGroupsOf(this.#db, policy, request.deviceIds))?.groups;
    const manifest = artifact ? await this.#manifest(artifact.digest) : undefined;
    this.#run(row, {
      deviceIds: request.deviceIds,
      skipped,
      joined: 0,
      policy,
      link,
      windowGroups,
      manifest,
      rollback,
    });
    return row;
  }

  /**
   * Applies an operator command; RolloutCommandError when it does not apply now. In cluster mode a
   * rollout another node owns gets it forwarded there (unless `forward` is false: a command that
   * was forwarded here), and OwnerUnavailableError when that node does not answer.
   */
  async command(
    id: string,
    command: RolloutCommand,
    actor: string,
    options: { forward?: boolean } = {},
  ): Promise<boolean> {
    if (this.#scheduled.has(id)) {
      // Only cancel applies before the start: there is nothing to pause, resume or promote yet.
      if (command !== "cancel") throw new RolloutCommandError("scheduled", command, "scheduled");
      if (await this.#serially(() => this.#cancelScheduled(id, actor))) return true;
    }
    const runner = this.#runners.get(id);
    if (!runner) {
      const cluster = this.#cluster;
      if (!cluster || options.forward === false || cluster.owns(id)) return false;
      return await this.#forward(cluster, id, command, actor);
    }
    runner.command(command);
    await this.#writer.enqueue({
      kind: "event",
      event: { rolloutId: id, type: `operator.${command}`, actor, data: {} },
    });
    // The rollout's new state is durable too before the caller hears back: another node's reader
    // of the row (cluster mode) sees what the command did.
    await runner.written();
    return true;
  }

  /** Sends a command to the node that owns the rollout (cluster mode); see `command()`. */
  async #forward(
    cluster: Cluster,
    id: string,
    command: RolloutCommand,
    actor: string,
  ): Promise<boolean> {
    const row = await getRollout(this.#db, id);
    if (!row || !(ACTIVE_ROLLOUT_STATES as readonly string[]).includes(row.state)) return false;
    if (row.owner === null || row.owner === cluster.node) {
      throw new OwnerUnavailableError(
        `Cannot ${command} rollout: no node drives it right now (its owner stopped; another takes it over within ${cluster.ttlMs} ms): try again`,
      );
    }
    return await cluster.forward(row.owner, id, command, actor);
  }

  /**
   * Resumes every unfinished rollout from the database; returns how many. In cluster mode only
   * those this node can claim: unowned, expired, or held by this node id before a restart.
   */
  async recover(): Promise<number> {
    this.#requireLink();
    const rows = await listActiveRollouts(this.#db);
    let resumed = 0;
    for (let row of rows) {
      if (this.#cluster) {
        const claimed = await this.#cluster.claim(row.id, true);
        if (!claimed) continue;
        row = claimed;
      }
      if (await this.#restore(row)) resumed++;
    }
    const early = this.#early ?? [];
    this.#early = null;
    if (this.#earlyDropped > 0) {
      this.#log(`recovery: dropped ${this.#earlyDropped} response(s) that arrived while it ran`);
    }
    for (const [deviceId, message] of early) this.handleResponse(deviceId, message);
    await this.#owedRollbacks();
    return resumed;
  }

  /** Drives a rollout this node just claimed from another (cluster takeover), from the database. */
  async restore(row: Rollout): Promise<void> {
    if (this.#closed) return;
    this.#abandon(row.id);
    await this.#restore(row);
  }

  /** Stops driving a rollout at once, writing nothing more: another node's lease holds it now. */
  lost(id: string): void {
    this.#abandon(id);
  }

  #abandon(id: string): void {
    const scheduled = this.#scheduled.get(id);
    if (scheduled) {
      this.#clock.clearTimeout(scheduled.timer);
      this.#scheduled.delete(id);
    }
    this.#dynamic.delete(id);
    const runner = this.#runners.get(id);
    if (!runner) return;
    runner.abandon();
    this.#runners.delete(id);
    for (const device of runner.devices) {
      if (this.#byDevice.get(device) === runner) this.#byDevice.delete(device);
    }
  }

  /** Rebuilds one unfinished rollout from its rows and runs it; false when it cannot be. */
  async #restore(row: Rollout): Promise<boolean> {
    const link = this.#requireLink();
    if (row.state === "scheduled") {
      // One whose time passed while the node was down starts now; the others wait for theirs.
      this.#schedule(row);
      this.#log(`rollout ${row.id}: scheduled for ${row.startAt?.toISOString()}`);
      return true;
    }
    const deviceIds = await listRolloutDeviceIds(this.#db, row.id);
    const started = await loadStartedRolloutDevices(this.#db, row.id);
    const policy = row.policy as unknown as Policy;
    try {
      const snapshot = snapshotFromRows(row.id, row.snapshot as RolloutSnapshot | null, {
        policy,
        deviceIds,
        started,
        now: this.#clock.now(),
        token: this.#token,
      });
      await this.#prepare(deviceIds);
      const skipped = started.filter((d) => d.state === SKIPPED).map((d) => d.deviceId);
      // Window groups are not stored: they come from the devices' tags as they are now.
      const windows = await windowGroupsOf(this.#db, policy, deviceIds);
      if (windows && windows.unmatched.size > 0) {
        this.#log(
          `rollout ${row.id}: devices no longer match a maintenance window and wait: ${
            describeUnmatched(policy.windows!.by!, windows.unmatched)
          }`,
        );
      }
      this.#run(row, {
        deviceIds,
        skipped,
        joined: row.joined,
        policy,
        link,
        snapshot,
        windowGroups: windows?.groups,
        ...await this.#stored(row),
      });
    } catch (error) {
      // One rollout that cannot be restored must not keep the others, or the service, down.
      this.#log(
        `rollout ${row.id}: cannot resume, left as "${row.state}": ${describeDatabaseError(error)}`,
      );
      return false;
    }
    this.#log(
      `rollout ${row.id}: resumed (${row.state}, stage ${row.stage}, ${started.length} of ${deviceIds.length} devices started)`,
    );
    return true;
  }

  /**
   * Offers a device just registered or re-tagged to the dynamic rollouts whose targets it now
   * matches: it joins the oldest that still takes devices (in its last stage, or `skipped` if it
   * runs that rollout's artifact already). The rollout's id, or null when none took it.
   */
  async offer(device: OfferedDevice): Promise<string | null> {
    if (this.#dynamic.size === 0) return null;
    try {
      return await this.#serially(() => this.#offer(device));
    } catch (error) {
      // The device stays registered; only its joining failed.
      this.#log(
        `device ${device.id}: cannot join a dynamic rollout: ${describeDatabaseError(error)}`,
      );
      return null;
    }
  }

  /** Stops every runner without changing any rollout, and waits for sends under way. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const { timer } of this.#scheduled.values()) this.#clock.clearTimeout(timer);
    this.#scheduled.clear();
    await Promise.all([...this.#runners.values()].map((runner) => runner.stop()));
  }

  #requireLink(): ServerLink {
    if (!this.#link) throw new Error("Cannot run rollouts: no MQTT link is attached");
    return this.#link;
  }

  async #prepare(deviceIds: readonly string[]): Promise<void> {
    await this.#tracker.preload(deviceIds);
    const missing = deviceIds.filter((id) => !this.#keys.has(id));
    for (const [id, key] of await loadPublicKeys(this.#db, missing)) this.#keys.set(id, key);
    for (const id of deviceIds) this.#frameVersions.delete(id);
    for (const [id, version] of await loadFrameVersions(this.#db, deviceIds)) {
      this.#frameVersions.set(id, version);
    }
    if (this.keys?.next) {
      const trusted = await loadServerKeys(this.#db, deviceIds);
      for (const id of deviceIds) this.keys.trust(id, trusted.get(id));
    }
  }

  /** [SRUP-7] The artifact's signed manifest, if it has one: INITIATE version 3 carries it. */
  async #manifest(digest: string): Promise<Uint8Array | undefined> {
    const manifest = (await getArtifact(this.#db, digest))?.manifest;
    return manifest ? Uint8Array.fromBase64(manifest) : undefined;
  }

  /** What a stored rollout runs with besides its devices: a rollback's digests, the manifest. */
  async #stored(row: Rollout): Promise<Pick<RunStart, "rollback" | "manifest">> {
    return {
      rollback: row.action === "rollback" ? await listRollbackDigests(this.#db, row.id) : undefined,
      manifest: row.artifactDigest === null ? undefined : await this.#manifest(row.artifactDigest),
    };
  }

  /**
   * [SRUP-10] The rotate-key `rollout.created` event's reasons for its skipped devices: the counts
   * per reason, and `skippedReason` when there is only one.
   */
  async #rotationSkips(
    rolloutId: string,
    skipped: number,
  ): Promise<{ skippedReason?: string; skippedReasons?: Record<string, number> }> {
    if (skipped === 0) return {};
    const counts = await countRotationSkips(this.#db, rolloutId);
    const reasons = Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
    const names = Object.keys(reasons);
    return { ...(names.length === 1 ? { skippedReason: names[0] } : {}), skippedReasons: reasons };
  }

  /** Devices of a rollout skipped at creation: they already run its artifact. */
  async #skipped(rolloutId: string): Promise<string[]> {
    // Right after creation the only rows that are not pending are the skipped ones.
    const rows = await loadStartedRolloutDevices(this.#db, rolloutId);
    return rows.filter((d) => d.state === SKIPPED).map((d) => d.deviceId);
  }

  /** Runs `task` after every scheduled start, cancel and join queued before it. */
  #serially<T>(task: () => Promise<T>): Promise<T> {
    const done = this.#serial.catch(() => {}).then(task);
    this.#serial = done;
    return done;
  }

  /** Arms the timer that starts a scheduled rollout at its time (at once if that has passed). */
  #schedule(row: Rollout, retry = false): void {
    const at = row.startAt?.getTime() ?? this.#clock.now();
    const entry = { row, timer: null as unknown };
    const arm = () => {
      const wait = retry ? START_RETRY_MS : at - this.#clock.now();
      retry = false;
      if (wait <= 0) {
        entry.timer = null;
        this.#serially(() => this.#begin(row.id)).catch(() => {});
        return;
      }
      entry.timer = this.#clock.setTimeout(arm, Math.min(wait, MAX_TIMER_MS));
    };
    this.#scheduled.set(row.id, entry);
    if ((row.policy as Policy).dynamic && row.action === "update") {
      this.#dynamic.set(row.id, row.targets);
    }
    arm();
  }

  /** Starts a scheduled rollout whose time came, with every device that joined meanwhile. */
  async #begin(id: string): Promise<void> {
    const entry = this.#scheduled.get(id);
    // Cancelled meanwhile, the timer of an entry since replaced, or shutting down.
    if (!entry || entry.timer !== null || this.#closed) return;
    let row: Rollout | undefined;
    try {
      row = await moveRollout(this.#db, id, { from: "scheduled", to: "running" });
    } catch (error) {
      this.#log(
        `rollout ${id}: cannot start at its scheduled time, retrying: ${
          describeDatabaseError(error)
        }`,
      );
      this.#schedule(entry.row, true);
      return;
    }
    this.#scheduled.delete(id);
    // Moved by someone else first: nothing of it runs here.
    if (!row) return;
    try {
      const deviceIds = await listRolloutDeviceIds(this.#db, id);
      const skipped = await this.#skipped(id);
      await this.#prepare(deviceIds);
      const policy = row.policy as unknown as Policy;
      const windowGroups = (await windowGroupsOf(this.#db, policy, deviceIds))?.groups;
      const stored = await this.#stored(row);
      const link = this.#requireLink();
      this.#run(row, {
        deviceIds,
        skipped,
        joined: row.joined,
        policy,
        link,
        windowGroups,
        ...stored,
      });
      this.#log(`rollout ${id}: started at its scheduled time (${deviceIds.length} devices)`);
    } catch (error) {
      // Stored as running: the next start of the service resumes it from the start.
      this.#dynamic.delete(id);
      this.#log(
        `rollout ${id}: cannot start, left as "running" for recovery: ${
          describeDatabaseError(error)
        }`,
      );
    }
  }

  /** Cancels a scheduled rollout: nothing was ever sent; false if it is not scheduled any more. */
  async #cancelScheduled(id: string, actor: string): Promise<boolean> {
    const entry = this.#scheduled.get(id);
    if (!entry) return false;
    const row = await moveRollout(this.#db, id, { from: "scheduled", to: "cancelled" });
    this.#clock.clearTimeout(entry.timer);
    this.#scheduled.delete(id);
    this.#dynamic.delete(id);
    if (!row) return false;
    await this.#writer.enqueue({
      kind: "event",
      event: { rolloutId: id, type: "operator.cancel", actor, data: {} },
    });
    await this.#writer.enqueue({
      kind: "event",
      event: { rolloutId: id, type: "rollout.cancelled", data: { scheduled: true } },
    });
    this.#log(`rollout ${id}: cancelled before its scheduled start`);
    return true;
  }

  async #offer(device: OfferedDevice): Promise<string | null> {
    if (this.#closed) return null;
    // Rollout ids are UUIDv7: in id order, the oldest first.
    for (const [id, targets] of [...this.#dynamic].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!matches(targets, device.tags)) continue;
      const runner = this.#runners.get(id);
      if (runner && (runner.has(device.id) || !runner.engine.joinable)) continue;
      if (!runner && !this.#scheduled.has(id)) continue;
      const joined = await joinRollout(this.#db, id, device.id);
      if (!joined) continue;
      if (runner) {
        await this.#prepare([device.id]);
        const windows = runner.engine.policy.windows;
        // Its window group from its tags now, as recovery reads them.
        const windowGroup = windows?.by === undefined
          ? 0
          : windowGrouper(windows)(device.tags[windows.by]);
        try {
          runner.join(device.id, { ...joined, windowGroup });
        } catch (error) {
          if (!(error instanceof RolloutCommandError)) throw error;
          // It finished its last stage meanwhile: it stays as it is, without this device.
          await leaveRollout(this.#db, id, device.id);
          continue;
        }
        this.#byDevice.set(device.id, runner);
      }
      await this.#writer.enqueue({
        kind: "event",
        event: {
          rolloutId: id,
          deviceId: device.id,
          type: "rollout.device.joined",
          data: { ...joined },
        },
      });
      this.#log(
        `device ${device.id}: joined dynamic rollout ${id}${
          joined.skipped ? " (skipped: it runs the artifact already)" : ""
        }`,
      );
      return id;
    }
    return null;
  }

  #run(row: Rollout, start: RunStart): void {
    const { deviceIds, policy, link, snapshot } = start;
    // A rollback's devices each go back to their own previous version: none joins one (nor a key
    // rotation: a device registered later is caught up by the next one).
    if (policy.dynamic && row.action === "update") this.#dynamic.set(row.id, row.targets);
    const runner = new RolloutRunner({
      id: row.id,
      policy,
      devices: deviceIds,
      joined: start.joined,
      artifact: row.artifactUrl === null || row.artifactDigest === null
        ? null
        : { url: row.artifactUrl, digest: row.artifactDigest, manifest: start.manifest },
      rollback: start.rollback,
      keyRotation: row.action === "rotate-key" ? this.#keyRotation(row, policy) : undefined,
      onKeyConfirmed: (device, fingerprint) => this.keys?.trust(device, fingerprint),
      frameVersion: (id) => this.#frameVersions.get(id) ?? 2,
      writer: this.#writer,
      link,
      clock: this.#clock,
      snapshot,
      skip: start.skipped,
      windowGroups: start.windowGroups,
      token: this.#token,
      log: this.#log,
      lease: this.#cluster?.lease(row.id),
      onFinished: (done) => {
        this.#clock.setTimeout(() => this.#forget(done), FINISHED_GRACE_MS);
        if (done.engine.state === "halted" && policy.onAbort === "rollback") {
          this.#onHalted(row, done).catch((error) =>
            this.#log(`rollout ${row.id}: cannot roll back: ${describeDatabaseError(error)}`)
          );
        }
      },
    });
    this.#runners.set(row.id, runner);
    for (const id of deviceIds) this.#byDevice.set(id, runner);
    runner.start();
  }

  /** [SRUP-10] What a key rotation sends: the next key, which must be the one it was created for. */
  #keyRotation(row: Rollout, policy: Policy): KeyRotation {
    const next = this.keys?.next;
    if (!next || next.fingerprint !== row.serverKey) {
      throw new Error(
        `Cannot run key rotation: its key "${row.serverKey}" is not this server's next key (${
          next ? `"${next.fingerprint}"` : "none"
        })`,
      );
    }
    return {
      publicKey: next.publicKey,
      privateKey: next.privateKey,
      fingerprint: next.fingerprint,
      overlap: policy.keyOverlap ?? 0,
    };
  }

  /**
   * `onAbort: rollback`: once a halted rollout's writes have landed (so each device's digests are
   * what it confirmed), the devices it activated are rolled back.
   */
  async #onHalted(row: Rollout, runner: RolloutRunner): Promise<void> {
    // Only an update installed anything to undo.
    if (row.action !== "update") return;
    await runner.written();
    await this.#rollBack(row, runner.engine.devicesIn("activated"));
  }

  /**
   * A rollback rollout of `deviceIds` (those `row` activated), under its policy with
   * `onAbort: none`, linked to it. A rollback is never itself rolled back.
   */
  async #rollBack(row: Rollout, deviceIds: readonly string[]): Promise<void> {
    if (deviceIds.length === 0) {
      this.#log(`rollout ${row.id}: halted before any device activated: nothing to roll back`);
      return;
    }
    const policy = { ...(row.policy as unknown as Policy), onAbort: "none" as const };
    const rollback = await this.create({
      artifact: null,
      action: "rollback",
      rollbackOf: row.id,
      loaded: {
        policy,
        provenance: {
          sha256: row.policySha256,
          commit: row.policyCommit,
          dirty: null,
          source: `rollout ${row.id}`,
        },
      },
      targets: { rollbackOf: row.id },
      deviceIds,
      actor: "onAbort",
      name: `Rollback of ${row.name ?? row.id}`,
    });
    this.#log(
      `rollout ${row.id}: halted; rollback rollout ${rollback.id} sends its ${deviceIds.length} activated device(s) back`,
    );
  }

  /** Rollbacks `onAbort` owed when the process stopped between a halt and its rollback. */
  async #owedRollbacks(): Promise<void> {
    for (const row of await listHaltedWithoutRollback(this.#db)) {
      const activated = await listRolloutDeviceIds(this.#db, row.id, { state: "activated" });
      await this.#rollBack(row, activated).catch((error) =>
        this.#log(`rollout ${row.id}: cannot roll back: ${describeDatabaseError(error)}`)
      );
    }
  }

  #forget(runner: RolloutRunner): void {
    if (this.#runners.get(runner.id) !== runner) return;
    this.#runners.delete(runner.id);
    this.#cluster?.drop(runner.id);
    this.#dynamic.delete(runner.id);
    for (const id of runner.devices) {
      if (this.#byDevice.get(id) === runner) this.#byDevice.delete(id);
    }
    runner.stop().catch(() => {});
  }
}

/** Whether a device with these tags is one the targets select (`all`, or every tag given). */
function matches(targets: Record<string, unknown>, tags: Record<string, string>): boolean {
  if (targets.all === true) return true;
  const wanted = targets.tags as Record<string, string> | undefined;
  return wanted !== undefined &&
    Object.entries(wanted).every(([key, value]) => tags[key] === value);
}
