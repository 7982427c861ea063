/** Retry backoff: exponential, capped, with jitter so a fleet that failed together retries apart. */

/** Backoff settings, in milliseconds. */
export interface BackoffRule {
  backoff: number;
  maxBackoff: number;
}

/**
 * Delay before retry number `attempt` (1 for the first retry): `backoff × 2^(attempt-1)` capped at
 * `maxBackoff`, then "equal jitter": uniformly within its upper half, so it is never near zero.
 */
export function backoffDelay(rule: BackoffRule, attempt: number, random: () => number): number {
  const ceiling = Math.min(rule.maxBackoff, rule.backoff * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
