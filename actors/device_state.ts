/** The states a device goes through in a rollout, as names and as compact codes. */

/** Every device state, in code order; `pending` means not started yet. */
export const DEVICE_STATES = [
  "pending",
  "initiated",
  "received",
  "activating",
  "activated",
  "retrying",
  "timed_out",
  "failed",
  "cancelled",
] as const;

/** The state of one device in a rollout. */
export type DeviceState = typeof DEVICE_STATES[number];

/** The compact code of each state, as stored in the fleet's per-device byte array. */
export const STATE_CODE: Readonly<Record<DeviceState, number>> = Object.fromEntries(
  DEVICE_STATES.map((state, code) => [state, code]),
) as Record<DeviceState, number>;

/** Whether a device in `state` is done with this rollout. */
export function isFinished(state: DeviceState): boolean {
  return state === "activated" || state === "failed" || state === "cancelled";
}
