/** Why a rollout halted or paused, in one sentence for an operator; stages numbered from 1. */
import type { HaltReason, PauseReason } from "./reasons.ts";

/** One sentence for an operator: the dashboard, the API and the simulator all show this one. */
export function describeHaltReason(reason: HaltReason): string {
  switch (reason.kind) {
    case "digest_mismatch":
      return `Digest mismatch (0x${reason.status.toString(16).toUpperCase()}) from device ` +
        `${reason.device} for token ${reason.token} in stage ${reason.stage + 1}: the artifact ` +
        `may have been tampered with`;
    case "failure_threshold":
      return `Failure threshold exceeded (${reason.scope}, stage ${reason.stage + 1}): ` +
        `${reason.failed} of ${reason.finished} finished devices failed ` +
        `(${reason.percent.toFixed(1)}% > ${reason.maxPercent}%)`;
    case "success_below_min":
      return `Stage ${reason.stage + 1} ended with ${reason.activated} of ${reason.devices} ` +
        `devices activated (${reason.percent.toFixed(1)}% < ${reason.minPercent}%)`;
  }
}

/** One sentence for an operator on why a rollout is paused. */
export function describePauseReason(reason: PauseReason): string {
  return reason.kind === "operator" ? "By an operator" : describeHaltReason(reason);
}
