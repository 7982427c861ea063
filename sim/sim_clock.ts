/**
 * A simulated clock with a binary heap of timers: `setTimeout` and `clearTimeout` are O(log n), and
 * time only moves when `advance()` or `run()` fire timers. Compatible with XState's `Clock` and the
 * engine's. Timers due at the same time fire in the order they were set, so runs are reproducible.
 */

/** A pending timer; it is also the opaque id `setTimeout` returns. */
interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  /** Position in the heap, or -1 once fired or cleared. */
  index: number;
}

/** A simulated clock for the engine, XState actors and virtual devices. */
export class SimClock {
  #now: number;
  #heap: Timer[] = [];
  #seq = 0;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.#heap.length;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer: Timer = { at: this.#now + delay, seq: this.#seq++, fn, index: this.#heap.length };
    this.#heap.push(timer);
    this.#up(timer.index);
    return timer;
  }

  clearTimeout(id: unknown): void {
    const timer = id as Timer | null | undefined;
    if (!timer || timer.index < 0 || this.#heap[timer.index] !== timer) return;
    this.#remove(timer.index);
  }

  /** Fires every timer due up to `now + ms`, in order, then sets the time to `now + ms`. */
  advance(ms: number): void {
    const until = this.#now + ms;
    this.run({ until });
    this.#now = Math.max(this.#now, until);
  }

  /**
   * Fires timers in order until none is left, the next is after `until` (a clock time), or `limit`
   * timers fired. Returns how many fired.
   */
  run(options: { until?: number; limit?: number } = {}): number {
    const until = options.until ?? Infinity;
    const limit = options.limit ?? Infinity;
    let fired = 0;
    while (fired < limit) {
      const top = this.#heap[0];
      if (!top || top.at > until) break;
      this.#remove(0);
      this.#now = Math.max(this.#now, top.at);
      fired++;
      top.fn();
    }
    return fired;
  }

  #remove(index: number): void {
    const heap = this.#heap;
    const removed = heap[index]!;
    removed.index = -1;
    const last = heap.pop()!;
    if (last === removed) return;
    heap[index] = last;
    last.index = index;
    this.#up(index);
    this.#down(last.index);
  }

  #up(index: number): void {
    const heap = this.#heap;
    const timer = heap[index]!;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const above = heap[parent]!;
      if (!before(timer, above)) break;
      heap[index] = above;
      above.index = index;
      index = parent;
    }
    heap[index] = timer;
    timer.index = index;
  }

  #down(index: number): void {
    const heap = this.#heap;
    const timer = heap[index]!;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
      const below = heap[child]!;
      if (!before(below, timer)) break;
      heap[index] = below;
      below.index = index;
      index = child;
    }
    heap[index] = timer;
    timer.index = index;
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
