/** [SRUP-5] Replay protection backed by the database, checked in memory on the hot path. */
import { type Db, type GroupCommitWriter, loadSequences, type NewEvent } from "../db/mod.ts";
import type { SequenceTracker } from "../mqtt/mod.ts";

/**
 * The last accepted sequence id per device, loaded from the database once and persisted through
 * the group-commit writer. The write is queued before the engine sees the RESPONSE, so the two
 * commit together or not at all: after a crash, a frame whose effects were lost is accepted again,
 * and one whose effects were kept is a replay.
 */
export class StoredSequenceTracker implements SequenceTracker {
  readonly #db: Db;
  readonly #writer: GroupCommitWriter;
  readonly #last = new Map<string, bigint | null>();

  constructor(db: Db, writer: GroupCommitWriter) {
    this.#db = db;
    this.#writer = writer;
  }

  /** Loads the devices of a rollout in one query, so their first RESPONSEs cost no lookup. */
  async preload(ids: readonly string[]): Promise<void> {
    const missing = ids.filter((id) => !this.#last.has(id));
    const loaded = await loadSequences(this.#db, missing);
    for (const id of missing) if (!this.#last.has(id)) this.#last.set(id, loaded.get(id) ?? null);
  }

  async advance(sender: string, sequence: bigint): Promise<boolean> {
    if (!this.#last.has(sender)) await this.preload([sender]);
    const last = this.#last.get(sender) ?? null;
    if (last !== null && sequence <= last) return false;
    this.#last.set(sender, sequence);
    this.#writer.enqueue({ kind: "sequence", deviceId: sender, sequence }).catch(() => {
      // The writer logs the failed batch; the id stays accepted in memory, so no replay gets in.
    });
    return true;
  }

  /** The last accepted sequence id of a device, as this process checks it (null: none yet). */
  async last(id: string): Promise<bigint | null> {
    if (!this.#last.has(id)) await this.preload([id]);
    return this.#last.get(id) ?? null;
  }

  /**
   * Sets a device's floor to `floor` (null: none, as for a new device) and records `event` with
   * it; returns the floor it replaced. Durable before live: the row and the event commit first,
   * then the floor in memory moves, unless a RESPONSE accepted meanwhile already moved it (that
   * frame's sequence write, queued after the reset, raises the stored floor the same way).
   */
  async reset(
    id: string,
    floor: bigint | null,
    event: (previous: bigint | null) => NewEvent,
  ): Promise<bigint | null> {
    const previous = await this.last(id);
    // Read and queued in one turn: no RESPONSE of this device is checked in between.
    await this.#writer.enqueue({
      kind: "sequence_reset",
      deviceId: id,
      floor,
      event: event(previous),
    });
    if ((this.#last.get(id) ?? null) === previous) this.#last.set(id, floor);
    return previous;
  }

  /** Forgets a removed device. */
  forget(id: string): void {
    this.#last.delete(id);
  }
}
