/** Every `ctl` command, in the order the help lists them: one entry per command (name, usage, handler). */
import { ARTIFACT_COMMANDS } from "./ctl_artifacts.ts";
import type { CtlCommand } from "./ctl_command.ts";
import { DEVICE_COMMANDS } from "./ctl_devices.ts";
import { EVENT_COMMANDS } from "./ctl_events.ts";
import { ROLLOUT_COMMANDS } from "./ctl_rollouts.ts";
import { ACCESS_COMMANDS, SERVICE_COMMANDS } from "./ctl_service.ts";

export type { CtlCommand, CtlInput } from "./ctl_command.ts";

/** Every `ctl` command. */
export const COMMANDS: readonly CtlCommand[] = [
  ...SERVICE_COMMANDS,
  ...DEVICE_COMMANDS,
  ...ARTIFACT_COMMANDS,
  ...ROLLOUT_COMMANDS,
  ...ACCESS_COMMANDS,
  ...EVENT_COMMANDS,
];
