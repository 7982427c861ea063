/** The events an engine emits: plain JSON (tokens as hex), one per transition, a union on `type`. */
import type { PolicyProvenance } from "../policies/mod.ts";
import type { HaltReason, PauseReason } from "./reasons.ts";
import type { RolloutReport } from "./rollout_machine.ts";
import type { DeviceState, FinalRolloutState, RecordState } from "./states.ts";

/** What every event carries. */
export interface EventBase {
  rollout: string;
  /** Clock time in milliseconds. */
  at: number;
}

/** What every device event carries: enough to rebuild the device's row from the stream. */
export interface DeviceEventBase extends EventBase {
  device: string;
  /** The stage the device belongs to. */
  stage: number;
  /** Hex of the device's current token. */
  token: string;
  attempt: number;
}

/** Why a device failed or is retrying: a status name such as `UPDATE_FAIL_SERVER`, or `timeout`. */
type Reason = string | undefined;

/** One device's transition. `status` is the RESPONSE status that caused it, or the last one. */
export type DeviceRolloutEvent =
  | DeviceEventBase & { type: "device.initiated"; deadline: number }
  | DeviceEventBase & { type: "device.received"; status: number | null }
  | DeviceEventBase & { type: "device.activating"; deadline: number; resent?: boolean }
  | DeviceEventBase & { type: "device.timed_out"; missing: "response" | "activation" }
  | DeviceEventBase & {
    type: "device.retrying";
    status: number | null;
    reason: Reason;
    deadline: number;
  }
  | DeviceEventBase & { type: "device.activated"; status: number | null }
  | DeviceEventBase & { type: "device.failed"; status: number | null; reason: Reason }
  | DeviceEventBase & { type: "device.cancelled"; from: DeviceState };

/** Figures of the stage a stage event concerns. */
export interface StageFigures {
  percent: number;
  devices: number;
  activated: number;
  failed: number;
}

/** Reports without figures of their own. */
type PlainReport = Exclude<
  RolloutReport,
  | "rollout.started"
  | "rollout.stage.started"
  | "rollout.stage.received"
  | "rollout.stage.completed"
  | "rollout.bake.started"
  | "rollout.paused"
  | "rollout.halted"
>;

/** A transition of the rollout itself; `stage` is its current stage. */
export type RolloutLevelEvent =
  | EventBase & {
    type: "rollout.started";
    stage: number;
    figures: {
      devices: number;
      stages: number[];
      policy: string;
      provenance: PolicyProvenance | null;
    };
  }
  | EventBase & {
    type: "rollout.stage.started";
    stage: number;
    figures: { percent: number; devices: number; first: number; end: number };
  }
  | EventBase & {
    type: "rollout.stage.received";
    stage: number;
    figures: StageFigures & { received: number };
  }
  | EventBase & { type: "rollout.stage.completed"; stage: number; figures: StageFigures }
  | EventBase & { type: "rollout.bake.started"; stage: number; deadline: number | undefined }
  | EventBase & { type: "rollout.paused"; stage: number; pauseReason: PauseReason | undefined }
  | EventBase & { type: "rollout.halted"; stage: number; haltReason: HaltReason | undefined }
  | EventBase & { type: "rollout.restored"; stage: number; figures: { from: number } }
  | EventBase & { type: PlainReport; stage: number };

/** Any event an engine emits. */
export type RolloutEvent = DeviceRolloutEvent | RolloutLevelEvent;

/** Every event type an engine emits. */
export type RolloutEventType = RolloutEvent["type"];

/** The state a device's row takes on each event; null for `timed_out`, which is momentary. */
export const ROW_STATE_OF = {
  "device.initiated": "initiated",
  "device.received": "received",
  "device.activating": "activating",
  "device.activated": "activated",
  "device.retrying": "retrying",
  "device.timed_out": null,
  "device.failed": "failed",
  "device.cancelled": "cancelled",
} as const satisfies Record<DeviceRolloutEvent["type"], RecordState | null>;

/** Whether an event is a device's. */
export function isDeviceEvent(event: RolloutEvent): event is DeviceRolloutEvent {
  return "device" in event;
}

/** The event a rollout emits on reaching each final state. */
export const FINAL_EVENT_TYPE = {
  halted: "rollout.halted",
  completed: "rollout.completed",
  cancelled: "rollout.cancelled",
} as const satisfies Record<FinalRolloutState, RolloutEventType>;
