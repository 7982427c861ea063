/**
 * Group commit: the engine's many small writes are queued and committed together, one transaction
 * per batch. `enqueue()` resolves only once its transaction committed, so a caller can make state
 * durable before a device sees anything that depends on it.
 */
import type { Db } from "./open.ts";
import { InvalidDataError } from "./errors.ts";
import { appendEvents, type Event, type NewEvent } from "./events.ts";
import { type DeviceUpdate, updateDevices } from "./devices.ts";
import { type RolloutPatch, updateRollout } from "./rollouts.ts";
import { type RolloutDeviceRow, upsertRolloutDevices } from "./rollout_devices.ts";

/** One write the engine queues. */
export type WriteOp =
  | { kind: "event"; event: NewEvent }
  /** The device's full row; later rows for the same (rollout, device) in a batch replace earlier ones. */
  | { kind: "rollout_device"; row: RolloutDeviceRow }
  /** Later patches of the same rollout in a batch are merged over earlier ones. */
  | { kind: "rollout"; id: string; patch: RolloutPatch }
  /** A confirmed activation: the device's current digest becomes `digest`. */
  | { kind: "activation"; deviceId: string; digest: string }
  | { kind: "seen"; deviceId: string; at: Date }
  /** A sequence id accepted from a device (replay protection); only the highest is kept. */
  | { kind: "sequence"; deviceId: string; sequence: bigint };

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
  /** Told of each committed batch, for metrics. */
  onCommit?: (info: CommitInfo) => void;
  /** Told of each committed batch's events with their ids, in order, e.g. to stream them. */
  onEvents?: (events: Event[]) => void;
  /** Told of each failed batch; default logs one line with console.error. */
  onError?: (error: unknown, size: number) => void;
}

interface Entry {
  op: WriteOp;
  resolve: () => void;
  reject: (error: unknown) => void;
  settled: Promise<unknown>;
}

/** Queues writes and commits them in batches; see the module comment. */
export class GroupCommitWriter {
  #db: Db;
  #maxOps: number;
  #maxDelayMs: number;
  #onCommit?: (info: CommitInfo) => void;
  #onEvents?: (events: Event[]) => void;
  #onError: (error: unknown, size: number) => void;
  #queue: Entry[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(db: Db, options: GroupCommitOptions = {}) {
    this.#db = db;
    this.#maxOps = options.maxOps ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 5;
    if (!Number.isInteger(this.#maxOps) || this.#maxOps < 1) {
      throw new RangeError(`Invalid maxOps: ${this.#maxOps} is not a positive integer`);
    }
    if (!(this.#maxDelayMs >= 0)) {
      throw new RangeError(`Invalid maxDelayMs: ${this.#maxDelayMs} is below 0`);
    }
    this.#onCommit = options.onCommit;
    this.#onEvents = options.onEvents;
    this.#onError = options.onError ?? logFailure;
  }

  /** Writes waiting for a batch, not counting one being committed. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Queues a write; resolves once it is committed, rejects with the error if its batch failed.
   * Handle the rejection even when not awaiting: an unhandled one ends the process.
   */
  enqueue(op: WriteOp): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Error("Cannot enqueue write: the writer is closed"));
    }
    // An event's time is when it happened, not when its batch commits.
    if (op.kind === "event" && op.event.at === undefined) {
      op = { kind: "event", event: { ...op.event, at: new Date() } };
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#queue.push({ op, resolve, reject, settled: promise.catch(() => {}) });
    if (this.#queue.length >= this.#maxOps) this.#start();
    else this.#timer ??= setTimeout(() => this.#start(), this.#maxDelayMs);
    return promise;
  }

  /** Commits everything queued so far; resolves when those writes are settled. */
  async flush(): Promise<void> {
    const queued = this.#queue.map((entry) => entry.settled);
    if (queued.length > 0) this.#start();
    await Promise.all([this.#running, ...queued]);
  }

  /** Refuses further writes and commits the queued ones. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #start(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running) return;
    const batch = this.#queue.splice(0, this.#maxOps);
    this.#running = this.#commit(batch).finally(() => {
      this.#running = undefined;
      if (this.#queue.length === 0) return;
      // Writes queued during a commit have waited long enough, but the next batch starts from a
      // timer: PGlite runs in-process, and back-to-back commits would starve timers and I/O.
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#start(), 0);
    });
  }

  async #commit(batch: Entry[]): Promise<void> {
    const started = performance.now();
    let committed: Event[];
    try {
      committed = await this.#db.transaction((tx) =>
        applyWrites(tx, batch.map((entry) => entry.op))
      );
    } catch (error) {
      this.#onError(error, batch.length);
      for (const entry of batch) entry.reject(error);
      return;
    }
    this.#onCommit?.({ size: batch.length, ms: performance.now() - started });
    if (committed.length > 0) {
      try {
        this.#onEvents?.(committed);
      } catch (error) {
        console.error(
          `Cannot deliver committed events: ${error instanceof Error ? error.message : error}`,
        );
      }
    }
    for (const entry of batch) entry.resolve();
  }
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
      case "sequence":
        deviceUpdates.push({ id: op.deviceId, sequence: op.sequence });
        break;
      case "seen":
        deviceUpdates.push({ id: op.deviceId, seenAt: op.at });
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

function logFailure(error: unknown, size: number): void {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`Cannot commit batch of ${size} writes: ${message}`);
}
