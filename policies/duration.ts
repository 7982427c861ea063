/** Durations in policy files: `500ms`, `30s`, `10m`, `1h30m`, `2d`. */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** What a duration looks like: amounts with units, `1h30m`. */
export const DURATION = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART = /(\d+)(ms|s|m|h|d)/g;

/** Longest duration a policy may give: the largest delay a JavaScript timer can wait. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** Milliseconds of a duration such as `10m` or `1h30m`; throws RangeError when it is malformed. */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) {
    throw new RangeError(`Invalid duration "${text}": use a number and a unit (ms, s, m, h, d)`);
  }
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(PART)) {
    ms += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  }
  if (ms > MAX_DURATION_MS) throw new RangeError(`Duration "${text}" exceeds 24d`);
  return ms;
}

/** A short human form of `ms`: `1h30m`, `45s`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = Math.round(ms);
  let text = "";
  for (const unit of ["d", "h", "m", "s", "ms"] as const) {
    const size = UNIT_MS[unit];
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return text;
}
