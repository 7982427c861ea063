/** Rate limits on starting devices: a fixed rate per minute, or an exponential ramp. */
import type { Policy } from "../policies/mod.ts";

/** A policy's `rate`. */
export type RateRule = NonNullable<Policy["rate"]>;

/** Counts a ramp can grow on. */
export interface RampCounts {
  notified: number;
  succeeded: number;
}

/** The rate, in devices per minute, that `rule` allows given the counts so far. */
export function perMinute(rule: RateRule, counts: RampCounts): number {
  if ("perMinute" in rule) return rule.perMinute;
  const { base, factor, every, on, max } = rule.exponential;
  const steps = Math.floor(counts[on] / every);
  return Math.min(max ?? Infinity, base * factor ** steps);
}

/**
 * Spaces starts evenly at the current rate (no burst allowance, so a paused or idle rollout never
 * builds up credit and floods on resume).
 */
export class RateLimiter {
  readonly rule: RateRule;
  #next: number;

  constructor(rule: RateRule, next: number | null = null) {
    this.rule = rule;
    this.#next = next ?? -Infinity;
  }

  /** Clock time from which the next start is allowed (null when now is fine from the start). */
  get next(): number | null {
    return Number.isFinite(this.#next) ? this.#next : null;
  }

  /** Whether a start is allowed at `now`. */
  allows(now: number): boolean {
    return now >= this.#next;
  }

  /** Records a start at `now`. */
  take(now: number, counts: RampCounts): void {
    this.#next = Math.max(this.#next, now) + 60_000 / perMinute(this.rule, counts);
  }
}
