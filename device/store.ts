/** Where a device agent keeps its state and artifacts: on disk, or in memory for the simulator. */
import type { AgentState } from "./state.ts";

/** Receives a download as it streams in. */
export interface ArtifactWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Makes everything written durable. */
  close(): Promise<void>;
  /** Gives up on the download; the slot's content is then unspecified and unused. */
  abort(): Promise<void>;
}

/** Durable storage of one device agent. */
export interface DeviceStore {
  /** The last saved state (an empty one the first time). */
  load(): Promise<AgentState>;
  /** Replaces the saved state; a kill at any instant leaves the old or the new one. */
  save(state: AgentState): Promise<void>;
  /** Opens `slot` for a new artifact; never called for the current or previous slot. */
  openSlot(slot: number): Promise<ArtifactWriter>;
  /** Saves `state` and points the active and previous artifacts at its slots; all or nothing. */
  activate(state: AgentState): Promise<void>;
  /** The agent's next outgoing sequence id; strictly increasing across restarts. */
  nextSequence(): Promise<bigint>;
}
