/** Why a rollout paused or halted: plain JSON, persisted with the rollout and shown to operators. */

/** Failure figures behind a threshold decision. */
export interface FailureFigures {
  scope: "stage" | "overall";
  stage: number;
  failed: number;
  finished: number;
  /** `failed / finished` as a percentage. */
  percent: number;
  maxPercent: number;
}

/** Success figures of a stage that ended below `success.minPercent`. */
export interface SuccessFigures {
  stage: number;
  devices: number;
  activated: number;
  percent: number;
  minPercent: number;
}

/** Why a rollout is paused. */
export type PauseReason =
  | { kind: "operator" }
  | ({ kind: "failure_threshold" } & FailureFigures)
  | ({ kind: "success_below_min" } & SuccessFigures);

/** Why a rollout halted: a digest mismatch, or a failure policy whose action is `abort`. */
export type HaltReason =
  | { kind: "digest_mismatch"; device: string; status: number; token: string; stage: number }
  | ({ kind: "failure_threshold" } & FailureFigures)
  | ({ kind: "success_below_min" } & SuccessFigures);

/**
 * Why a device of a running rollout waits, beyond its state: `waiting_window`, its maintenance
 * window is closed (not started yet, a retry, or under `onClose: hold` an ACTIVATE).
 */
export const WAIT_REASONS = ["waiting_window"] as const;

/** Why a device waits. */
export type WaitReason = typeof WAIT_REASONS[number];
