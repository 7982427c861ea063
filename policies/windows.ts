/**
 * Maintenance windows in a policy: recurring windows (a 5-field cron start in an IANA time zone,
 * and a duration), for every device or per value of a device tag (`by: site`).
 */
import { Cron } from "croner";
import { z } from "zod";
import { DURATION, formatDuration, parseDuration } from "./duration.ts";

/** Longest window: a week; a longer one is a mistake (use a cron that fires more often). */
export const MAX_WINDOW_MS = 7 * 86_400_000;
/** Most windows in one list, and most `groups` (a device's group is stored in one byte). */
export const MAX_WINDOWS = 50;
export const MAX_WINDOW_GROUPS = 200;

/** Whether `zone` is an IANA time zone name the runtime knows. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

// A fixed instant to probe a cron from: a pattern that never fires after it (30 February) is refused.
const PROBE = new Date(Date.UTC(2000, 0, 1));

/** A parsed 5-field cron in `zone`: minute, hour, day of month, month, day of week. */
export function cronOf(start: string, zone: string): Cron {
  return new Cron(start, { timezone: zone, mode: "5-part", paused: true });
}

/** Why `start` is not a 5-field cron that ever fires, or null when it is fine. */
function cronProblem(start: string): string | null {
  try {
    if (cronOf(start, "UTC").nextRun(PROBE) === null) {
      return `Cron "${start}" never fires`;
    }
    return null;
  } catch (error) {
    const detail = (error as Error).message.replace(/^CronPattern: /, "").replace(/\.$/, "");
    return `Invalid cron "${start}": use 5 fields (minute hour day-of-month month day-of-week): ${detail}`;
  }
}

const windowDuration = z.string({ error: 'Expected a duration such as "4h"' }).regex(DURATION, {
  error: (issue) =>
    `Invalid duration "${String(issue.input)}": use a number and a unit (ms, s, m, h, d)`,
}).transform((text, ctx) => {
  try {
    const ms = parseDuration(text);
    if (ms === 0) {
      ctx.issues.push({ code: "custom", message: "Must be longer than 0", input: text });
    }
    if (ms > MAX_WINDOW_MS) {
      ctx.issues.push({
        code: "custom",
        message: `Must be at most ${formatDuration(MAX_WINDOW_MS)} (a week): got ${text}`,
        input: text,
      });
    }
    return ms;
  } catch {
    // Over 24 days, the longest duration of any policy: over a week too.
    ctx.issues.push({
      code: "custom",
      message: `Must be at most 7d (a week): got ${text}`,
      input: text,
    });
    return z.NEVER;
  }
});

/** One recurring window. */
const windowSchema = z.strictObject({
  start: z.string({ error: 'Expected a 5-field cron such as "0 2 * * *"' }).max(200).check(
    (ctx) => {
      const problem = cronProblem(ctx.value);
      // Beyond what the API's JSON Schema says, as the rules between values: 422 inconsistent_policy.
      if (problem) ctx.issues.push({ code: "custom", message: problem, input: ctx.value });
    },
  ),
  duration: windowDuration,
  timeZone: z.string().max(100).default("UTC").check((ctx) => {
    if (!isTimeZone(ctx.value)) {
      ctx.issues.push({
        code: "custom",
        message: `Unknown time zone "${ctx.value}": use an IANA name such as "Europe/Berlin"`,
        input: ctx.value,
      });
    }
  }),
});

const windowList = z.array(windowSchema).min(1, { error: "Needs at least one window" }).max(
  MAX_WINDOWS,
);

/** What happens to a device still in flight when its window closes. */
export const ON_CLOSE = ["finish", "hold"] as const;

/** The `windows` key of a policy. */
export const windowsSchema = z.strictObject({
  /** Every device's windows; with `by`, those of devices whose tag value has no entry in `groups`. */
  open: windowList.optional(),
  /** A device tag: each of its values in `groups` gets its own windows. */
  by: z.string().min(1).max(100).optional(),
  groups: z.record(z.string().min(1).max(200), windowList).optional(),
  onClose: z.enum(ON_CLOSE).default("finish"),
}).superRefine((windows, ctx) => {
  if (windows.by === undefined) {
    if (windows.groups !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["groups"],
        message: 'Needs "by": the tag to group by',
      });
    } else if (windows.open === undefined) {
      ctx.addIssue({ code: "custom", path: ["open"], message: "Needs a list of windows" });
    }
    return;
  }
  if (windows.groups === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["groups"],
      message: `Needs the windows of each "${windows.by}" value`,
    });
  } else if (Object.keys(windows.groups).length > MAX_WINDOW_GROUPS) {
    ctx.addIssue({
      code: "custom",
      path: ["groups"],
      message: `At most ${MAX_WINDOW_GROUPS} groups: got ${Object.keys(windows.groups).length}`,
    });
  }
});

/** One validated window: its cron start, duration in milliseconds and time zone. */
export type MaintenanceWindow = z.output<typeof windowSchema>;
/** A policy's validated `windows`. */
export type Windows = z.output<typeof windowsSchema>;
