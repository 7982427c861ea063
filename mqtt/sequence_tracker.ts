/** [SRUP-5] The highest sequence id accepted from each sender. */

/** Remembers the last accepted version 2 sequence id per sender; back it with storage to survive restarts. */
export interface SequenceTracker {
  /** Records `sequence` for `sender` and returns true when it is above the last one; false for a replay. */
  advance(sender: string, sequence: bigint): Promise<boolean>;
}

/** A tracker in memory: replays are caught until the process restarts. */
export class MemorySequenceTracker implements SequenceTracker {
  readonly #last = new Map<string, bigint>();

  advance(sender: string, sequence: bigint): Promise<boolean> {
    const last = this.#last.get(sender);
    if (last !== undefined && sequence <= last) return Promise.resolve(false);
    this.#last.set(sender, sequence);
    return Promise.resolve(true);
  }
}
