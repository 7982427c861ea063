/** A policy's `startAt`: an absolute time in ISO 8601 with a UTC offset or `Z`. */

// [0-9], not \d: a fuzzer's regex engine may read \d as any Unicode digit.
/** A date and time with its offset: `2026-12-06T02:00:00Z`; seconds and fractions optional. */
export const START_AT =
  /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})$/;

const LOCAL = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?/;

/** Why `text` is not a start time by its form (not a date and time, or no offset), or null. */
export function startAtFormIssue(text: string): string | null {
  if (START_AT.test(text)) return null;
  if (LOCAL.test(text) && LOCAL.exec(text)![0] === text) {
    // A local time means a different instant on every server: refused.
    return `Invalid start time "${text}": give a UTC offset or Z, such as "${text}Z" or "${text}+01:00"`;
  }
  return `Invalid start time "${text}": expected an ISO 8601 date and time with an offset, such as "2026-12-06T02:00:00Z"`;
}

/**
 * Epoch milliseconds of a `startAt` such as `2026-12-06T02:00:00+01:00`; throws RangeError saying
 * which rule it breaks: not a date and time, no UTC offset, or a day or time that does not exist.
 */
export function parseStartAt(text: string): number {
  const issue = startAtFormIssue(text);
  if (issue) throw new RangeError(issue);
  const [, year, month, day, hour, minute, second = "0"] = LOCAL.exec(text)!;
  const ms = Date.parse(text);
  const utc = new Date(Date.UTC(+year!, +month! - 1, +day!, +hour!, +minute!, +second));
  if (
    Number.isNaN(ms) || +hour! > 23 || +minute! > 59 || +second > 59 ||
    utc.getUTCMonth() !== +month! - 1 || utc.getUTCDate() !== +day!
  ) {
    throw new RangeError(`Invalid start time "${text}": no such day, time of day or offset`);
  }
  return ms;
}

/** Whether a start time of the right form names a real instant (no 30 February, no 25:00). */
export function startAtExists(text: string): boolean {
  try {
    parseStartAt(text);
    return true;
  } catch {
    return false;
  }
}
