/** The wall clock as the engine's injected Clock. */
import type { Clock } from "../actors/mod.ts";

/** Real timers and `Date.now()`: engine deadlines are epoch milliseconds, so they survive restarts. */
export const wallClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (id) => clearTimeout(id as number),
};
