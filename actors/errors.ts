/** Errors callers are meant to catch: an operator command that does not apply right now. */

/** Why a command was refused. */
export type RolloutCommandErrorCode =
  | "not_started"
  | "scheduled"
  | "already_started"
  | "not_running"
  | "not_paused"
  | "not_waiting_approval"
  | "finished";

/** A command (pause, resume, cancel, promote, start) refused in the rollout's current state: HTTP 409. */
export class RolloutCommandError extends Error {
  readonly code: RolloutCommandErrorCode;
  /** The rollout's state when the command was refused. */
  readonly state: string;

  constructor(code: RolloutCommandErrorCode, command: string, state: string) {
    super(`Cannot ${command} rollout: it is "${state}"`);
    this.name = "RolloutCommandError";
    this.code = code;
    this.state = state;
  }
}
