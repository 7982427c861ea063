/**
 * @module
 * The SRUP device agent: an embeddable core (clock, fetch, storage and transport injected), its
 * file and memory stores, identity provisioning, and the wiring of one agent to one MQTT client.
 */
export {
  createDeviceAgent,
  DeviceAgent,
  type DeviceAgentOptions,
  type PublishFrame,
} from "./agent.ts";
export { type Clock, wallClock } from "../io/clock.ts";
export {
  DEFAULT_FETCH_LIMITS,
  fetchArtifact,
  type FetchArtifactOptions,
  type FetchFailure,
  type FetchLimits,
  type FetchSuccess,
  refuseUrl,
} from "./fetch_artifact.ts";
export type { ArtifactWriter, DeviceStore } from "./store.ts";
export { DEVICE_FILES, FileDeviceStore, readState } from "./file_store.ts";
export { MemoryDeviceStore, type MemoryDeviceStoreOptions } from "./memory_store.ts";
export {
  type AgentState,
  type ArtifactRecord,
  type DeviceStatus,
  deviceStatus,
  emptyState,
  freeSlot,
  SLOT_COUNT,
} from "./state.ts";
export { type DeviceKeyStore, MemoryKeyStore } from "./key_store.ts";
export { applyKeySet, type KeySetOutcome, trustedReleaseKeys } from "./release_keys.ts";
export {
  type DeviceIdentity,
  fileKeyStore,
  IDENTITY_FILES,
  loadIdentity,
  provisionDevice,
  readId,
} from "./identity.ts";
export { type RunningDevice, startDevice, type StartDeviceOptions } from "./run.ts";
