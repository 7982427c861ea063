/** The policy schema (zod): what a policy file may say, with defaults, durations in milliseconds. */
import { z } from "zod";
import { DURATION, parseDuration } from "./duration.ts";
import { START_AT, startAtExists, startAtFormIssue } from "./start_at.ts";
import { windowsSchema } from "./windows.ts";

/** A duration string (`10m`) read as milliseconds. */
const duration = z.string({ error: 'Expected a duration such as "30s" or "10m"' }).regex(DURATION, {
  error: (issue) =>
    `Invalid duration "${String(issue.input)}": use a number and a unit (ms, s, m, h, d)`,
}).transform(
  (text, ctx) => {
    try {
      return parseDuration(text);
    } catch (error) {
      ctx.issues.push({ code: "custom", message: (error as Error).message, input: text });
      return z.NEVER;
    }
  },
);

const percent = z.number().min(0).max(100);

const stage = z.strictObject({
  percent: z.number().gt(0, { error: "Must be more than 0" }).max(100),
  bake: duration.optional().transform((ms) => ms ?? 0),
  approval: z.enum(["manual", "auto"]).default("auto"),
});

/**
 * Stage percentages are cumulative: strictly increasing, ending at 100. Runs even when a stage has
 * other errors (so every problem is reported at once), so it skips percents that are not numbers.
 */
function checkStages(stages: { percent: unknown }[], ctx: z.RefinementCtx): void {
  const percentOf = (index: number) => {
    const percent = (stages[index] as { percent?: unknown } | undefined)?.percent;
    return typeof percent === "number" ? percent : undefined;
  };
  stages.forEach((_stage, index) => {
    const percent = percentOf(index);
    const previous = percentOf(index - 1);
    if (percent !== undefined && previous !== undefined && percent <= previous) {
      ctx.addIssue({
        code: "custom",
        path: [index, "percent"],
        message: `Must be more than the previous stage's ${previous}`,
      });
    }
  });
  const last = percentOf(stages.length - 1);
  if (last !== undefined && last !== 100) {
    ctx.addIssue({
      code: "custom",
      path: [stages.length - 1, "percent"],
      message: `The last stage must be 100: got ${last}`,
    });
  }
}

const exponential = z.strictObject({
  base: z.int().positive(),
  factor: z.number().gt(1, { error: "Must be more than 1" }).max(100),
  every: z.int().positive(),
  on: z.enum(["notified", "succeeded"]).default("notified"),
  max: z.int().positive().optional(),
}).refine((ramp) => ramp.max === undefined || ramp.max >= ramp.base, {
  path: ["max"],
  error: "Must not be less than base",
});

const rate = z.union([
  z.strictObject({ perMinute: z.int().positive() }),
  z.strictObject({ exponential }),
]);

/** Statuses (and `timeout`) a policy may retry; 0xFF never is. */
export const RETRYABLE = ["fc", "fd", "fe", "timeout"] as const;
/** One retryable condition. */
export type Retryable = typeof RETRYABLE[number];

const retry = z.strictObject({
  // Total INITIATE attempts per device, the first included.
  attempts: z.int().min(1).max(100).default(3),
  backoff: duration.default(30_000),
  maxBackoff: duration.default(600_000),
  on: z.array(z.enum(RETRYABLE)).default([...RETRYABLE]),
}).refine((retry) => retry.maxBackoff >= retry.backoff, {
  path: ["maxBackoff"],
  error: "Must not be shorter than backoff",
});

const failure = z.strictObject({
  maxPercent: percent,
  minDevices: z.int().min(1).default(1),
  action: z.enum(["pause", "abort"]).default("pause"),
  scope: z.enum(["stage", "overall"]).default("stage"),
});

/** An absolute start time, kept as written; whether it is still to come is checked at creation. */
const startAt = z.string({ error: "Expected a date and time as a string" }).regex(START_AT, {
  error: (issue) => startAtFormIssue(String(issue.input)) ?? "Invalid start time",
  abort: true,
}).refine(startAtExists, {
  error: (issue) =>
    `Invalid start time "${String(issue.input)}": no such day, time of day or offset`,
}).meta({
  description:
    "When the rollout starts by itself: ISO 8601 with a UTC offset or Z. Until then it is scheduled.",
  examples: ["2026-12-06T02:00:00+01:00"],
});

const positiveDuration = duration.refine((ms) => ms > 0, { error: "Must be longer than 0" });

/** The zod schema of a policy, strict at every level. */
export const policySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, {
    error: "Must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit",
  }),
  // deno-lint-ignore no-control-regex -- control characters (but line breaks and tabs) are refused
  description: z.string().max(1000).regex(/^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$/, {
    error: "Must not contain control characters other than line breaks and tabs",
  }).optional(),
  stages: z.array(stage).min(1, { error: "Needs at least one stage" }).max(100).superRefine(
    checkStages,
    { when: (payload) => Array.isArray(payload.value) },
  ),
  concurrency: z.int().positive().max(1_000_000).default(100),
  rate: rate.optional(),
  success: z.strictObject({ minPercent: percent.default(100) }).prefault({}),
  failure: failure.optional(),
  retry: retry.prefault({}),
  timeouts: z.strictObject({
    response: positiveDuration.default(600_000),
    activation: positiveDuration.default(300_000),
  }).prefault({}),
  activation: z.enum(["immediate", "stage"]).default("immediate"),
  // The rollout is `scheduled` until then (an API request's own startAt overrides it).
  startAt: startAt.optional(),
  // Devices that come to match the targets while the rollout runs join its last stage.
  dynamic: z.boolean().optional().meta({
    description:
      "Devices that come to match the targets while the rollout runs join its last stage",
  }),
  // What becomes of the devices a halted rollout already activated: kept (none), or sent back to
  // their previous version by a rollback rollout under this policy (rollback).
  onAbort: z.enum(["none", "rollback"], { error: 'Must be "none" or "rollback"' }).default("none"),
  // [SRUP-7] Off unless written: an orchestrator holding release keys then refuses to roll out an
  // artifact without a valid manifest. For development only.
  allowUnsigned: z.boolean().optional(),
  // [SRUP-10.2] In a key rotation, how long a device still accepts the old server key as well;
  // absent: 0, the old key is refused from the device's 0x10 on. Devices cap it at 30 days.
  keyOverlap: duration.optional(),
  windows: windowsSchema.optional(),
});

/** A validated policy: defaults filled in, every duration in milliseconds. */
export type Policy = z.output<typeof policySchema>;
/** A policy as written in a file or sent to the API (durations as strings). */
export type PolicyInput = z.input<typeof policySchema>;
