/** The failure threshold: failures among finished devices, in the stage or overall, from a base. */
import type { Policy } from "../policies/mod.ts";
import type { DeviceTable } from "./device_table.ts";
import type { FailureFigures } from "./reasons.ts";
import type { DeviceState } from "./states.ts";

/** Failures and successes so far. */
export interface ThresholdCounts {
  failed: number;
  ok: number;
}

/** Successes and failures in the threshold's scope. */
export function thresholdCounts(
  policy: Policy,
  options: { table: DeviceTable; stage: number },
): ThresholdCounts {
  const { table, stage } = options;
  const scope = policy.failure?.scope ?? "stage";
  const count = (state: DeviceState) =>
    scope === "stage" ? table.stageCount(stage, state) : table.count(state);
  // In two-phase activation a received device is a success so far: it waits for its stage.
  const ok = count("activated") + (policy.activation === "stage" ? count("received") : 0);
  return { failed: count("failed"), ok };
}

/** The figures of a breached threshold, counted from `base`, or null while it holds. */
export function thresholdBreach(
  policy: Policy,
  options: { table: DeviceTable; stage: number; base: ThresholdCounts },
): FailureFigures | null {
  const rule = policy.failure;
  if (!rule) return null;
  const now = thresholdCounts(policy, options);
  const failed = now.failed - options.base.failed;
  const finished = failed + now.ok - options.base.ok;
  if (finished < rule.minDevices || failed * 100 <= rule.maxPercent * finished) return null;
  return {
    scope: rule.scope,
    stage: options.stage,
    failed,
    finished,
    percent: (failed * 100) / finished,
    maxPercent: rule.maxPercent,
  };
}
