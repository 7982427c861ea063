/** Every live rollout of this service: creation, operator commands, RESPONSE routing, recovery. */
import {
  type Clock,
  type RolloutAction,
  type RolloutSnapshot,
  snapshotFromRows,
} from "../actors/mod.ts";
import {
  createRollout,
  type Db,
  describeDatabaseError,
  getArtifact,
  type GroupCommitWriter,
  listActiveRollouts,
  listHaltedWithoutRollback,
  listRollbackDigests,
  listRolloutDeviceIds,
  loadFrameVersions,
  loadPublicKeys,
  loadStartedRolloutDevices,
  type Rollout,
  SKIPPED,
} from "../db/mod.ts";
import type { ServerLink } from "../mqtt/mod.ts";
import type { LoadedPolicy, Policy } from "../policies/mod.ts";
import { newToken, type ResponseMessage, toHex } from "../srup/mod.ts";
import { RolloutRunner } from "./rollout_runner.ts";
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
}

/** What starting a runner takes. */
interface RunStart {
  deviceIds: readonly string[];
  /** A rollback's digests by position; undefined for an update. */
  rollback?: readonly (string | null)[];
  skipped: readonly string[];
  policy: Policy;
  link: ServerLink;
  snapshot?: RolloutSnapshot;
  manifest?: Uint8Array;
  windowGroups?: Uint8Array;
}

/** An operator command. */
export type RolloutCommand = "pause" | "resume" | "cancel" | "promote";

// RESPONSEs held during recovery: a reconnecting fleet answers at once, and each held one is ~200
// bytes; the engine's timeouts retry any dropped one.
const MAX_EARLY_RESPONSES = 100_000;

// A finished rollout's runner stays a while, so late confirmations still update devices' digests.
const FINISHED_GRACE_MS = 10 * 60_000;

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
  /** Public keys as stored (base64): a string costs ~64 bytes, a Uint8Array with its buffer ~230. */
  readonly #keys = new Map<string, string>();
  /** [SRUP-2.1] Registered frame versions, for devices that have one (null means 2). */
  readonly #frameVersions = new Map<string, number>();
  /** [SRUP-7] Release public keys; see {@linkcode OrchestratorOptions.releaseKeys}. */
  readonly releaseKeys: readonly Uint8Array[];
  #link: ServerLink | undefined;
  /** RESPONSEs that arrived before recovery finished, replayed once it has. */
  #early: [string, ResponseMessage][] | null = [];
  #earlyDropped = 0;

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
  }

  /** RESPONSEs dropped because the recovery buffer was full. */
  get earlyDropped(): number {
    return this.#earlyDropped;
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
    this.#log(
      `device ${deviceId}: sequence floor reset from ${previous ?? "none"} to ${
        floor ?? "none"
      } by "${actor.name}"`,
    );
    return previous;
  }

  /** Forgets a removed device's cached key and sequence id. */
  forgetDevice(id: string): void {
    this.#keys.delete(id);
    this.#frameVersions.delete(id);
    this.#tracker.forget(id);
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

  /** Creates a rollout (one transaction) and starts it. */
  async create(request: RolloutRequest): Promise<Rollout> {
    const link = this.#requireLink();
    checkHeapRoom(request.deviceIds.length, this.#heap());
    const { policy, provenance } = request.loaded;
    const action = request.action ?? "update";
    const artifact = action === "rollback" ? null : request.artifact;
    if (action === "update" && !artifact) throw new TypeError("Cannot create rollout: no artifact");
    const row = await createRollout(this.#db, {
      name: request.name ?? null,
      description: request.description ?? null,
      createdBy: request.actor,
      action,
      rollbackOf: request.rollbackOf ?? null,
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
    const skipped = await this.#skipped(row.id);
    const rollback = action === "rollback"
      ? await listRollbackDigests(this.#db, row.id)
      : undefined;
    await this.#prepare(request.deviceIds);
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
        },
      },
    });
    const windowGroups = request.windowGroups ??
      (await windowGroupsOf(this.#db, policy, request.deviceIds))?.groups;
    const manifest = artifact ? await this.#manifest(artifact.digest) : undefined;
    this.#run(row, {
      deviceIds: request.deviceIds,
      skipped,
      policy,
      link,
      windowGroups,
      manifest,
      rollback,
    });
    return row;
  }

  /** Applies an operator command; RolloutCommandError when it does not apply now. */
  async command(id: string, command: RolloutCommand, actor: string): Promise<boolean> {
    const runner = this.#runners.get(id);
    if (!runner) return false;
    runner.command(command);
    await this.#writer.enqueue({
      kind: "event",
      event: { rolloutId: id, type: `operator.${command}`, actor, data: {} },
    });
    return true;
  }

  /** Resumes every unfinished rollout from the database; returns how many. */
  async recover(): Promise<number> {
    const link = this.#requireLink();
    const rows = await listActiveRollouts(this.#db);
    let resumed = 0;
    for (const row of rows) {
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
        const windowGroups = windows?.groups;
        const rollback = row.action === "rollback"
          ? await listRollbackDigests(this.#db, row.id)
          : undefined;
        const manifest = row.artifactDigest === null
          ? undefined
          : await this.#manifest(row.artifactDigest);
        this.#run(row, {
          deviceIds,
          skipped,
          policy,
          link,
          snapshot,
          windowGroups,
          manifest,
          rollback,
        });
      } catch (error) {
        // One rollout that cannot be restored must not keep the others, or the service, down.
        this.#log(
          `rollout ${row.id}: cannot resume, left as "${row.state}": ${
            describeDatabaseError(error)
          }`,
        );
        continue;
      }
      resumed++;
      this.#log(
        `rollout ${row.id}: resumed (${row.state}, stage ${row.stage}, ${started.length} of ${deviceIds.length} devices started)`,
      );
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

  /** Stops every runner without changing any rollout, and waits for sends under way. */
  async close(): Promise<void> {
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
  }

  /** [SRUP-7] The artifact's signed manifest, if it has one: INITIATE version 3 carries it. */
  async #manifest(digest: string): Promise<Uint8Array | undefined> {
    const manifest = (await getArtifact(this.#db, digest))?.manifest;
    return manifest ? Uint8Array.fromBase64(manifest) : undefined;
  }

  /** Devices of a rollout skipped at creation: they already run its artifact. */
  async #skipped(rolloutId: string): Promise<string[]> {
    // Right after creation the only rows that are not pending are the skipped ones.
    const rows = await loadStartedRolloutDevices(this.#db, rolloutId);
    return rows.filter((d) => d.state === SKIPPED).map((d) => d.deviceId);
  }

  #run(row: Rollout, start: RunStart): void {
    const { deviceIds, policy, link, snapshot } = start;
    const runner = new RolloutRunner({
      id: row.id,
      policy,
      devices: deviceIds,
      artifact: row.artifactUrl === null || row.artifactDigest === null
        ? null
        : { url: row.artifactUrl, digest: row.artifactDigest, manifest: start.manifest },
      rollback: start.rollback,
      frameVersion: (id) => this.#frameVersions.get(id) ?? 2,
      writer: this.#writer,
      link,
      clock: this.#clock,
      snapshot,
      skip: start.skipped,
      windowGroups: start.windowGroups,
      token: this.#token,
      log: this.#log,
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

  /**
   * `onAbort: rollback`: once a halted rollout's writes have landed (so each device's digests are
   * what it confirmed), the devices it activated are rolled back.
   */
  async #onHalted(row: Rollout, runner: RolloutRunner): Promise<void> {
    if (row.action === "rollback") return;
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
    for (const id of runner.devices) {
      if (this.#byDevice.get(id) === runner) this.#byDevice.delete(id);
    }
    runner.stop().catch(() => {});
  }
}
