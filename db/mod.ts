/**
 * @module
 * Storage: the drizzle schema, PGlite and PostgreSQL drivers with migrations applied at open,
 * repository functions taking the database (or a transaction), and the group-commit writer.
 * See db/README.md.
 */
export * from "./schema.ts";
export { type Database, type Db, openDatabase, type OpenDatabaseOptions } from "./open.ts";
export { Maintenance, type MaintenanceOptions, type MaintenanceRun } from "./maintenance.ts";
export {
  classifyError,
  ConflictError,
  describeDatabaseError,
  guard,
  InvalidDataError,
  isUnavailable,
  sqlState,
  type StorageErrorOptions,
} from "./errors.ts";
export { uuidv7 } from "./ids.ts";
export { type Page, pageLimit } from "./page.ts";
export {
  countByServerKey,
  countRegistered,
  countRotationTargets,
  countWithPrevious,
  deleteDevice,
  type Device,
  type DeviceListItem,
  type DeviceUpdate,
  getDevice,
  listDevices,
  type ListDevicesOptions,
  loadFrameVersions,
  loadPublicKeys,
  loadSequences,
  loadServerKeys,
  loadTagValues,
  type NewDevice,
  registerDevice,
  registerDevices,
  resetPresence,
  type RotationTargets,
  selectDeviceIds,
  setDeviceTags,
  updateDevices,
} from "./devices.ts";
export {
  isRetiredKey,
  keyBefore,
  type KeyRotation,
  listKeyRotations,
  type NewKeyRotation,
  rotateDeviceKey,
} from "./device_keys.ts";
export {
  type Artifact,
  artifactLabels,
  artifactUrl,
  type ArtifactUse,
  artifactUses,
  getArtifact,
  listArtifacts,
  type ListArtifactsOptions,
  type NewArtifact,
  putArtifact,
  setArtifactManifest,
} from "./artifacts.ts";
export {
  countChunks,
  deleteChunks,
  getStoredBlob,
  readChunk,
  type StoredBlob,
  writeChunk,
} from "./artifact_chunks.ts";
export {
  countRolloutsByState,
  createRollout,
  getRollout,
  type JoinedDevice,
  joinRollout,
  leaveRollout,
  listActiveRollouts,
  listHaltedWithoutRollback,
  listRollbacksOf,
  listRollouts,
  type ListRolloutsOptions,
  moveRollout,
  type NewRollout,
  type Rollout,
  type RolloutPatch,
  updateRollout,
} from "./rollouts.ts";
export {
  countRolloutDevices,
  countRolloutDevicesByStage,
  countRotationSkips,
  deviceRolloutHistory,
  type DeviceRolloutHistoryItem,
  type DeviceRolloutHistoryOptions,
  findRolloutDeviceByToken,
  listRollbackDigests,
  listRolloutDeviceIds,
  listRolloutDevices,
  type ListRolloutDevicesOptions,
  loadStartedRolloutDevices,
  type RolloutDevice,
  type RolloutDeviceRow,
  upsertRolloutDevices,
} from "./rollout_devices.ts";
export {
  appendEvents,
  type Event,
  listEvents,
  type ListEventsOptions,
  type NewEvent,
} from "./events.ts";
export { type EventHistoryOptions, listEventHistory, loadEvents } from "./events.ts";
export { listenChannel, MAX_NOTIFY_BYTES, type NotifyChannel } from "./notify.ts";
export {
  type ApiToken,
  createApiToken,
  type CreatedApiToken,
  findApiToken,
  findApiTokenByHash,
  type FindApiTokenOptions,
  hashToken,
  listApiTokens,
  MAX_TOKEN_LENGTH,
  type NewApiToken,
  replaceApiToken,
  revokeApiToken,
  touchApiToken,
} from "./api_tokens.ts";
export {
  getServerState,
  type SequenceStore,
  sequenceStore,
  type SequenceStoreOptions,
  setServerState,
} from "./server_state.ts";
export {
  type CommitInfo,
  FencedWriteError,
  type GroupCommitOptions,
  GroupCommitWriter,
  type WriteOp,
} from "./batcher.ts";
export {
  type Claimable,
  type ClaimOptions,
  claimRollout,
  type ClusterNode,
  endStuckSessions,
  type Fence,
  heartbeat,
  type HeldLease,
  holdsFence,
  listClaimable,
  listNodes,
  nodeApplicationName,
  releaseLeases,
  renewLeases,
} from "./leases.ts";
