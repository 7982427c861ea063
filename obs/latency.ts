/** A cumulative latency histogram, shaped for Prometheus export. */

/** Upper bounds of the buckets in milliseconds; MQTT acknowledgements span sub-ms to seconds. */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.5,
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10000,
];

/** A point-in-time copy of a {@linkcode LatencyHistogram}. */
export interface LatencySnapshot {
  count: number;
  sumMs: number;
  maxMs: number;
  /** Cumulative counts: `buckets[i]` observations were at most `LATENCY_BUCKETS_MS[i]`. */
  buckets: number[];
}

/** Observations of a duration, in milliseconds. */
export class LatencyHistogram {
  readonly #counts = new Array<number>(LATENCY_BUCKETS_MS.length).fill(0);
  #count = 0;
  #sum = 0;
  #max = 0;

  /** Records one duration. */
  observe(ms: number): void {
    this.#count++;
    this.#sum += ms;
    if (ms > this.#max) this.#max = ms;
    const index = LATENCY_BUCKETS_MS.findIndex((bound) => ms <= bound);
    if (index >= 0) this.#counts[index]!++;
  }

  /** Cumulative counts, sum and maximum so far. */
  snapshot(): LatencySnapshot {
    let running = 0;
    const buckets = this.#counts.map((count) => running += count);
    return { count: this.#count, sumMs: this.#sum, maxMs: this.#max, buckets };
  }
}
