/**
 * Group commit: the engine's many small writes are queued and committed together, one transaction
 * per batch. `enqueue()` resolves only once its transaction committed, so a caller can make state
 * durable before a device sees anything that depends on it.
 *
 * Each rollout's writes in a batch sit behind their own savepoint: a write the database refuses
 * as wrong (a missing rollout, a failed check) rejects that rollout's writes only. A batch the
 * database cannot take now (down, restarting, disk full) is kept at the head of the queue and
 * retried with backoff until it lands, so no confirmation is lost to an outage.
 */
import type { Db } from "./open.ts";
import { describeDatabaseError, InvalidDataError, isUnavailable } from "./errors.ts";
import { appendEvents, type Event, type NewEvent } from "./events.ts";
import { type DeviceUpdate, updateDevices } from "./devices.ts";
import { type RolloutPatch, updateRollout } from "./rollouts.ts";
import { type RolloutDeviceRow, upsertRolloutDevices } from "./rollout_devices.ts";
import { type Fence, holdsFence } from "./leases.ts";

/** One write the engine queues. */
export type WriteOp =
  | { kind: "event"; event: NewEvent }
  /** The device's full row; later rows for the same (rollout, device) in a batch replace earlier ones. */
  | { kind: "rollout_device"; row: RolloutDeviceRow }
  /** Later patches of the same rollout in a batch are merged over earlier ones. */
  | { kind: "rollout"; id: string; patch: RolloutPatch }
  /** A confirmed activation: the device's current digest becomes `digest`. */
  | { kind: "activation"; deviceId: string; digest: string; rolloutId?: string }
  /** [SRUP-10] A confirmed KEY_ROTATE: the device trusts the server key with this fingerprint. */
  | { kind: "server_key"; deviceId: string; fingerprint: string; rolloutId?: string }
  /** Heard from, or connected to (online true) or gone from (false) the broker. */
  | { kind: "seen"; deviceId: string; at: Date; online?: boolean }
  /** A sequence id accepted from a device (replay protection); only the highest is kept. */
  | { kind: "sequence"; deviceId: string; sequence: bigint }
  /**
   * An operator's reset of a device's sequence floor (null: none) and its audit event, committed
   * together; sequence ids queued before it are overwritten, those queued after it raise it again.
   */
  | { kind: "sequence_reset"; deviceId: string; floor: bigint | null; event: NewEvent };

/** What {@linkcode GroupCommitOptions.onCommit} is told about each committed batch. */
export interface CommitInfo {
  /** Writes in the batch, before coalescing. */
  size: number;
  /** Milliseconds the transaction took. */
  ms: number;
}

/** Options for {@linkcode GroupCommitWriter}. */
export interface GroupCommitOptions {
  /** Commit as soon as this many writes wait; default 500. */
  maxOps?: number;
  /** Commit at most this long after the first write of a batch; default 5 ms, below MQTT's own latency. */
  maxDelayMs?: number;
  /** First wait before retrying a batch the database could not take; doubles up to `retryMaxMs`. Default 100 ms. */
  retryMinMs?: number;
  /** Longest wait between retries; default 5 s, so a database back is used within seconds. */
  retryMaxMs?: number;
  /** How long `close()` keeps retrying while the database is unavailable; default 5 s. */
  closeGraceMs?: number;
  /** Told of each committed batch, for metrics. */
  onCommit?: (info: CommitInfo) => void;
  /**
   * Told when a rollout's writes were refused because `fence` no longer owns it (another node
   * claimed it): the caller stops driving that rollout at once.
   */
  onFenced?: (rolloutId: string, fence: Fence, writes: number) => void;
  /** Told of each committed batch's events with their ids, in order, e.g. to stream them. */
  onEvents?: (events: Event[]) => void;
  /**
   * Told of each failure: `retryInMs` when the batch is kept and retried, undefined when `size`
   * writes are rejected. Default: one line with console.error, the database's cause and no SQL.
   */
  onError?: (error: unknown, size: number, retryInMs: number | undefined) => void;
}

interface Entry {
  op: WriteOp;
  /** The lease this write is conditional on (cluster mode); none for a write of no rollout. */
  fence?: Fence;
  resolve: () => void;
  reject: (error: unknown) => void;
  settled: Promise<unknown>;
}

/** What one transaction did: the writes it committed, the rollouts' writes it refused. */
interface Outcome {
  committed: Entry[];
  refused: [Entry[], unknown][];
  events: Event[];
  /** Groups refused by their fence: the rollout lost to another node. */
  fenced: Entry[][];
}

/** A write refused because its node no longer holds the rollout's lease at that epoch. */
export class FencedWriteError extends Error {
  constructor(rolloutId: string, fence: Fence) {
    super(
      `Cannot write rollout "${rolloutId}": node "${fence.node}" no longer holds its lease at epoch ${fence.epoch}`,
    );
    this.name = "FencedWriteError";
  }
}

/** Queues writes and commits them in batches; see the module comment. */
export class GroupCommitWriter {
  #db: Db;
  #maxOps: number;
  #maxDelayMs: number;
  #retryMinMs: number;
  #retryMaxMs: number;
  #closeGraceMs: number;
  #onCommit?: (info: CommitInfo) => void;
  #onEvents?: (events: Event[]) => void;
  #onFenced?: (rolloutId: string, fence: Fence, writes: number) => void;
  #fencedWrites = 0;
  #onError: (error: unknown, size: number, retryInMs: number | undefined) => void;
  #queue: Entry[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  #abandoned = false;
  /** Failed attempts in a row; 0 while commits succeed. */
  #failures = 0;
  #failedCommits = 0;
  #cause: unknown = undefined;

  constructor(db: Db, options: GroupCommitOptions = {}) {
    this.#db = db;
    this.#maxOps = options.maxOps ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 5;
    this.#retryMinMs = options.retryMinMs ?? 100;
    this.#retryMaxMs = options.retryMaxMs ?? 5_000;
    this.#closeGraceMs = options.closeGraceMs ?? 5_000;
    if (!Number.isInteger(this.#maxOps) || this.#maxOps < 1) {
      throw new RangeError(`Invalid maxOps: ${this.#maxOps} is not a positive integer`);
    }
    if (!(this.#maxDelayMs >= 0)) {
      throw new RangeError(`Invalid maxDelayMs: ${this.#maxDelayMs} is below 0`);
    }
    if (!(this.#retryMinMs > 0) || !(this.#retryMaxMs >= this.#retryMinMs)) {
      throw new RangeError(
        `Invalid retry: retryMinMs ${this.#retryMinMs} must be above 0 and at most retryMaxMs ${this.#retryMaxMs}`,
      );
    }
    this.#onCommit = options.onCommit;
    this.#onEvents = options.onEvents;
    this.#onFenced = options.onFenced;
    this.#onError = options.onError ?? logFailure;
  }

  /** Writes refused by their fence since the writer started: a lost lease's stale writes. */
  get fencedWrites(): number {
    return this.#fencedWrites;
  }

  /** Writes waiting for a batch, not counting one being committed. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Commit attempts that failed since the writer started, retried ones included. */
  get failedCommits(): number {
    return this.#failedCommits;
  }

  /** While the database cannot take the writes, its cause in one line; undefined otherwise. */
  get unavailable(): string | undefined {
    return this.#cause === undefined ? undefined : describeDatabaseError(this.#cause);
  }

  /**
   * Queues a write; resolves once it is committed, rejects if the database refused it as wrong
   * (or the writer closed while the database was unavailable). Handle the rejection even when not
   * awaiting: an unhandled one ends the process.
   */
  enqueue(op: WriteOp, options: { fence?: Fence } = {}): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Error("Cannot enqueue write: the writer is closed"));
    }
    // An event's time is when it happened, not when its batch commits.
    if (op.kind === "event" && op.event.at === undefined) {
      op = { kind: "event", event: { ...op.event, at: new Date() } };
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#queue.push({
      op,
      fence: options.fence,
      resolve,
      reject,
      settled: promise.catch(() => {}),
    });
    // While a batch waits for its retry, new writes queue behind it.
    if (this.#retryTimer !== undefined) return promise;
    if (this.#queue.length >= this.#maxOps) this.#start();
    else this.#timer ??= setTimeout(() => this.#start(), this.#maxDelayMs);
    return promise;
  }

  /** Commits everything queued so far; resolves when those writes are settled. */
  async flush(): Promise<void> {
    const queued = this.#queue.map((entry) => entry.settled);
    if (queued.length > 0 && this.#retryTimer === undefined) this.#start();
    await Promise.all([this.#running, ...queued]);
  }

  /**
   * Refuses further writes and commits the queued ones. While the database is unavailable it
   * keeps retrying for `closeGraceMs`, then rejects what is left: crash recovery redoes it.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const flushed = this.flush();
    const deadline = Date.now() + this.#closeGraceMs;
    while (!await settlesWithin(flushed, 250)) {
      if (this.#cause !== undefined && Date.now() >= deadline) this.#abandon();
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #abandon(): void {
    if (this.#abandoned) return;
    this.#abandoned = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const left = this.#queue.splice(0);
    if (left.length === 0) return;
    const error = new Error(
      `Cannot commit write: the database is unavailable and the writer closed: ${this.unavailable}`,
      { cause: this.#cause },
    );
    this.#onError(error, left.length, undefined);
    for (const entry of left) entry.reject(error);
  }

  #start(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running) return;
    const batch = this.#queue.splice(0, this.#maxOps);
    this.#running = this.#commit(batch).finally(() => {
      this.#running = undefined;
      if (this.#queue.length === 0 || this.#retryTimer !== undefined) return;
      // Writes queued during a commit have waited long enough, but the next batch starts from a
      // timer: PGlite runs in-process, and back-to-back commits would starve timers and I/O.
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#start(), 0);
    });
  }

  async #commit(batch: Entry[]): Promise<void> {
    const started = performance.now();
    let outcome: Outcome;
    try {
      outcome = await this.#db.transaction((tx) => applyBatch(tx, batch));
    } catch (error) {
      this.#failedCommits++;
      if (isUnavailable(error) && !this.#abandoned) {
        this.#retry(batch, error);
        return;
      }
      this.#onError(error, batch.length, undefined);
      for (const entry of batch) entry.reject(error);
      return;
    }
    this.#failures = 0;
    this.#cause = undefined;
    this.#onCommit?.({ size: batch.length, ms: performance.now() - started });
    for (const [entries, error] of outcome.refused) {
      this.#onError(error, entries.length, undefined);
      for (const entry of entries) entry.reject(error);
    }
    for (const entries of outcome.fenced) {
      const { fence } = entries[0]!;
      const rolloutId = rolloutOf(entries[0]!.op)!;
      const error = new FencedWriteError(rolloutId, fence!);
      this.#fencedWrites += entries.length;
      for (const entry of entries) entry.reject(error);
      this.#onFenced?.(rolloutId, fence!, entries.length);
    }
    if (outcome.events.length > 0) {
      try {
        this.#onEvents?.(outcome.events);
      } catch (error) {
        console.error(
          `Cannot deliver committed events: ${error instanceof Error ? error.message : error}`,
        );
      }
    }
    for (const entry of outcome.committed) entry.resolve();
  }

  /** Puts a batch the database could not take back at the head of the queue, and waits. */
  #retry(batch: Entry[], error: unknown): void {
    this.#failures++;
    this.#cause = error;
    const delay = Math.min(this.#retryMaxMs, this.#retryMinMs * 2 ** (this.#failures - 1));
    this.#onError(error, batch.length, delay);
    this.#queue.unshift(...batch);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#start();
    }, delay);
  }
}

/** Resolves true if `promise` settles within `ms`, false otherwise. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The rollout a write belongs to, which groups it behind that rollout's savepoint. */
function rolloutOf(op: WriteOp): string | null {
  switch (op.kind) {
    case "event":
      return op.event.rolloutId ?? null;
    case "rollout_device":
      return op.row.rolloutId;
    case "rollout":
      return op.id;
    case "activation":
    case "server_key":
      return op.rolloutId ?? null;
    case "seen":
    case "sequence":
    case "sequence_reset":
      return null;
  }
}

/**
 * Applies a batch in one transaction. When it holds several rollouts' writes, each rollout's sit
 * behind a savepoint, so a refused rollout is rolled back alone; writes of no rollout (sightings,
 * sequence ids) go in directly. An unavailable database fails it all.
 */
async function applyBatch(tx: Db, batch: Entry[]): Promise<Outcome> {
  const groups = new Map<string, Entry[]>();
  const shared: Entry[] = [];
  for (const entry of batch) {
    const rollout = rolloutOf(entry.op);
    // A rollout's fenced and unfenced writes (an operator's event) are apart: one may be refused.
    const key = rollout === null ? null : `${rollout}/${entry.fence?.epoch ?? ""}`;
    const group = key === null ? shared : groups.get(key);
    if (group) group.push(entry);
    else groups.set(key!, [entry]);
  }
  const outcome: Outcome = { committed: [], refused: [], events: [], fenced: [] };
  // Each fenced group first locks its rollout's row at its epoch (see holdsFence); a group whose
  // fence fails writes nothing, and the check itself changed nothing, so no savepoint is needed.
  for (const [key, entries] of groups) {
    const { fence } = entries[0]!;
    if (fence && !await holdsFence(tx, rolloutOf(entries[0]!.op)!, fence)) {
      outcome.fenced.push(entries);
      groups.delete(key);
    }
  }
  // One rollout (the common case): nothing to isolate it from, so no savepoint to pay for.
  if (groups.size <= 1) {
    const refused = new Set(outcome.fenced.flat());
    const rest = refused.size === 0 ? batch : batch.filter((entry) => !refused.has(entry));
    outcome.events = await applyWrites(tx, rest.map((e) => e.op));
    outcome.committed = rest;
    return outcome;
  }
  for (const entries of groups.values()) {
    try {
      const events = await tx.transaction((savepoint) =>
        applyWrites(savepoint, entries.map((entry) => entry.op))
      );
      outcome.events.push(...events);
      outcome.committed.push(...entries);
    } catch (error) {
      if (isUnavailable(error)) throw error;
      outcome.refused.push([entries, error]);
    }
  }
  outcome.events.push(...await applyWrites(tx, shared.map((entry) => entry.op)));
  outcome.committed.push(...shared);
  return outcome;
}

/** Applies a batch inside one transaction, coalescing repeated writes; returns the events written. */
async function applyWrites(tx: Db, ops: readonly WriteOp[]): Promise<Event[]> {
  const patches = new Map<string, RolloutPatch>();
  const rows = new Map<string, RolloutDeviceRow>();
  // Merged per device by updateDevices: one row update each, whatever the batch learned.
  const deviceUpdates: DeviceUpdate[] = [];
  const newEvents: NewEvent[] = [];
  for (const op of ops) {
    switch (op.kind) {
      case "event":
        newEvents.push(op.event);
        break;
      case "rollout_device":
        rows.set(`${op.row.rolloutId}/${op.row.deviceId}`, op.row);
        break;
      case "rollout":
        patches.set(op.id, { ...patches.get(op.id), ...op.patch });
        break;
      case "activation":
        deviceUpdates.push({ id: op.deviceId, digest: op.digest });
        break;
      case "server_key":
        deviceUpdates.push({ id: op.deviceId, serverKey: op.fingerprint });
        break;
      case "sequence":
        deviceUpdates.push({ id: op.deviceId, sequence: op.sequence });
        break;
      case "sequence_reset":
        deviceUpdates.push({ id: op.deviceId, resetSequence: op.floor });
        newEvents.push(op.event);
        break;
      case "seen":
        deviceUpdates.push({ id: op.deviceId, seenAt: op.at, online: op.online });
        break;
    }
  }
  for (const [id, patch] of patches) {
    if (!await updateRollout(tx, id, patch)) {
      throw new InvalidDataError(`Cannot update rollout: no rollout "${id}"`);
    }
  }
  await upsertRolloutDevices(tx, [...rows.values()]);
  await updateDevices(tx, deviceUpdates);
  const ids = await appendEvents(tx, newEvents);
  return newEvents.map((event, i) => ({
    id: ids[i]!,
    rolloutId: event.rolloutId ?? null,
    deviceId: event.deviceId ?? null,
    type: event.type,
    actor: event.actor ?? null,
    data: event.data ?? {},
    at: event.at ?? new Date(),
  }));
}

function logFailure(error: unknown, size: number, retryInMs: number | undefined): void {
  const cause = describeDatabaseError(error);
  console.error(
    retryInMs === undefined
      ? `Cannot commit ${size} writes, refused: ${cause}`
      : `Cannot commit ${size} writes, retrying in ${retryInMs} ms: ${cause}`,
  );
}
