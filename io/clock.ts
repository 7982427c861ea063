/** The wall clock as an injected `Clock` (the one type, actors/ports.ts), and a faster one. */
import type { Clock } from "../actors/ports.ts";

export type { Clock };

/** Real timers and `Date.now()`: engine deadlines are epoch milliseconds, so they survive restarts. */
export const wallClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (id) => clearTimeout(id as number),
};

/**
 * A clock running `factor` times faster than the wall clock, from now: policy durations (bake,
 * timeouts, backoff) shrink by `factor` while devices act in real time. For tests and demos.
 */
export function scaledClock(factor: number): Clock {
  if (!(factor >= 1)) throw new RangeError(`Invalid clock factor: ${factor} is below 1`);
  const origin = Date.now();
  return {
    now: () => origin + (Date.now() - origin) * factor,
    setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms) / factor),
    clearTimeout: (id) => clearTimeout(id as number),
  };
}
