/** The persisted form of a rollout: plain JSON, with flat per-device records that map to rows. */
import { z } from "zod";
import { RECORD_STATES, type RecordState } from "./states.ts";

/** One device that has started: exactly the columns of a per-device row. */
export interface DeviceRecord {
  id: string;
  state: RecordState;
  /** Hex of the device's current token. */
  token: string;
  attempt: number;
  /** Clock time its current wait ends (response, activation or backoff), or null. */
  deadline: number | null;
  lastStatus: number | null;
}

/** Responses the engine ignored, by reason. */
export interface IgnoredCounts {
  /** A token from an earlier attempt. */
  staleToken: number;
  /** A device that is not in flight (unknown, pending, finished, or the rollout is over). */
  notInFlight: number;
  /** A status the device's state does not expect (a second 0x00, an unknown byte, …). */
  unexpected: number;
}

/** Everything needed to restore a rollout and its in-flight devices. */
export interface RolloutSnapshot {
  format: 1;
  rollout: string;
  /** Clock time the snapshot was taken. */
  at: number;
  /** The supervisor's XState persisted snapshot (`getPersistedSnapshot()`). */
  machine: unknown;
  /** Index of the next device to start; every device before it has a record. */
  cursor: number;
  /** Two-phase activation: index of the next received device to activate. */
  activationCursor: number;
  /** Clock time from which the rate limit allows the next start, or null. */
  rateNext: number | null;
  /** Failure counts the threshold is measured from (moved on when a threshold pause resumes). */
  thresholdBase: { failed: number; ok: number };
  ignored: IgnoredCounts;
  devices: DeviceRecord[];
}

const count = z.int().min(0);
const record = z.strictObject({
  id: z.string().min(1),
  state: z.enum(RECORD_STATES),
  token: z.string().regex(/^[0-9a-f]{32}$/, { error: "Expected 32 lowercase hex digits" }),
  attempt: z.int().min(1).max(255),
  deadline: z.number().nullable(),
  lastStatus: z.int().min(0).max(255).nullable(),
});

const snapshotSchema = z.strictObject({
  format: z.literal(1),
  rollout: z.string(),
  at: z.number(),
  machine: z.looseObject({ status: z.string(), value: z.unknown(), context: z.unknown() }),
  cursor: count,
  activationCursor: count,
  rateNext: z.number().nullable(),
  thresholdBase: z.strictObject({ failed: z.number(), ok: z.number() }),
  ignored: z.strictObject({ staleToken: count, notInFlight: count, unexpected: count }),
  devices: z.array(record),
});

/** Checks a snapshot's shape (it may come from a database); throws TypeError naming the field. */
export function checkSnapshot(value: unknown): RolloutSnapshot {
  const result = snapshotSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new TypeError(
      `Invalid rollout snapshot: "${issue.path.join(".")}": ${issue.message}`,
      { cause: result.error },
    );
  }
  return result.data as RolloutSnapshot;
}
