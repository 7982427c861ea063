/** A rollout as the API and the dashboard show it: live figures when it runs, stored ones after. */
import {
  describeHaltReason,
  DEVICE_STATES,
  type DeviceState,
  type HaltReason,
  type PauseReason,
  type RolloutAction,
  type RolloutState,
  rolloutStateOf,
  type RolloutSummary,
  stageEnds,
  stageFigures,
  type StageSummary,
  type WindowSummary,
} from "../actors/mod.ts";
import {
  countRolloutDevices,
  countRolloutDevicesByStage,
  countRotationSkips,
  type Db,
  getArtifact,
  listRollbacksOf,
  type Rollout,
} from "../db/mod.ts";
import type { Orchestrator } from "./orchestrator.ts";

/** The API's rollout object. */
export interface RolloutView {
  id: string;
  name: string | null;
  description: string | null;
  createdBy: string | null;
  state: RolloutState;
  stage: number;
  stages: RolloutSummary["stages"] | null;
  /** Every device state, 0 for those no device is in. */
  counts: Record<DeviceState, number>;
  devices: number;
  /** Devices of `devices` that joined after creation (a dynamic rollout's new matches). */
  joined: number;
  /** Whether devices that come to match the targets join (the policy's `dynamic`). */
  dynamic: boolean;
  /** When a rollout created `scheduled` starts (or started) by itself; null for one started at once. */
  startAt: string | null;
  haltReason: ({ message: string } & Partial<HaltReason>) | null;
  pauseReason: PauseReason | null;
  bakeUntil: string | null;
  /** Maintenance windows while this process runs the rollout: each group's next opening. */
  windows: WindowsView | null;
  policy: { name: string; sha256: string; commit: string | null };
  /** `rollback`: each device goes back to its previous version (no artifact). */
  action: RolloutAction;
  /** What an update installs; null for a rollback. */
  artifact: { digest: string; url: string; name: string | null; version: string | null } | null;
  /** The rollout this rollback undoes (`onAbort: rollback`), or null. */
  rollbackOf: string | null;
  /** [SRUP-10] For rotate-key: the fingerprint of the key devices are moved to. */
  serverKey: string | null;
  /**
   * [SRUP-10] For rotate-key: how many devices were skipped at creation and why (`key_trusted`: they
   * trust the key already; `frame_version`: registered with frame version 1, no KEY_ROTATE); null
   * otherwise.
   */
  skippedReasons: { key_trusted: number; frame_version: number } | null;
  /** Cluster mode: the node whose lease drives it (null when none holds one, or one node on PGlite). */
  owner: string | null;
  /** The rollback rollouts made to undo this one, oldest first. */
  rolledBackBy: string[];
  createdAt: string;
  updatedAt: string;
}

/** A rollout's maintenance windows as the API shows them (times as ISO 8601). */
export interface WindowsView {
  /** The device tag the windows go by, or null (the same windows for every device). */
  by: string | null;
  onClose: WindowSummary["onClose"];
  /** Devices waiting for their window (reason `waiting_window`), over every group. */
  waiting: number;
  /** Devices whose tag value matches no window: they are never started. */
  unmatched: number;
  groups: {
    /** The tag value; null for the policy's `open` windows (every device, or the fallback). */
    group: string | null;
    open: boolean;
    nextOpen: string | null;
    nextClose: string | null;
    waiting: number;
  }[];
}

/** The windows of a summary, for the API. */
export function windowsView(by: string | null, windows: WindowSummary): WindowsView {
  const time = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();
  return {
    by,
    onClose: windows.onClose,
    waiting: windows.waiting,
    unmatched: windows.unmatched,
    groups: windows.groups.map((group) => ({
      group: group.group,
      open: group.open,
      nextOpen: time(group.nextOpen),
      nextClose: time(group.nextClose),
      waiting: group.waiting,
    })),
  };
}

/** The view of a stored rollout, with live figures when this process runs it. */
export async function rolloutView(
  db: Db,
  orchestrator: Orchestrator,
  row: Rollout,
): Promise<RolloutView> {
  const label = row.artifactDigest === null ? undefined : await getArtifact(db, row.artifactDigest);
  const base = {
    id: row.id,
    name: row.name,
    description: row.description,
    createdBy: row.createdBy,
    policy: { name: row.policyName, sha256: row.policySha256, commit: row.policyCommit },
    action: row.action,
    artifact: row.artifactDigest === null || row.artifactUrl === null ? null : {
      digest: row.artifactDigest,
      url: row.artifactUrl,
      name: label?.name ?? null,
      version: label?.version ?? null,
    },
    rollbackOf: row.rollbackOf,
    serverKey: row.serverKey,
    skippedReasons: row.action === "rotate-key" ? await countRotationSkips(db, row.id) : null,
    owner: row.owner,
    rolledBackBy: await listRollbacksOf(db, row.id),
    devices: row.deviceCount,
    joined: row.joined,
    dynamic: (row.policy as { dynamic?: unknown }).dynamic === true,
    startAt: row.startAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
  const runner = orchestrator.runner(row.id);
  if (runner) {
    const summary = runner.engine.summary();
    return {
      ...base,
      // A rollout is final only once all its writes landed: until then the stored state stands.
      state: runner.finalPending ? row.state : rolloutStateOf(summary.state),
      stage: summary.stage,
      stages: summary.stages,
      // A device joins its engine right after its row: the engine may be one ahead of the row read.
      devices: summary.devices,
      counts: summary.counts,
      haltReason: summary.haltReason
        ? { message: describeHaltReason(summary.haltReason), ...summary.haltReason }
        : null,
      pauseReason: summary.pauseReason,
      bakeUntil: summary.bakeUntil === null ? null : new Date(summary.bakeUntil).toISOString(),
      windows: summary.windows
        ? windowsView(runner.engine.policy.windows?.by ?? null, summary.windows)
        : null,
    };
  }
  return {
    ...base,
    state: row.state,
    stage: row.stage,
    stages: await storedStages(db, row),
    counts: everyState(await countRolloutDevices(db, row.id)),
    haltReason: row.haltReason
      ? { message: row.haltReason, ...(row.haltDevice ? { device: row.haltDevice } : {}) }
      : null,
    pauseReason: null,
    bakeUntil: null,
    windows: null,
  };
}

/** Each stage's figures from the stored device states, as a running rollout's summary has them. */
async function storedStages(db: Db, row: Rollout): Promise<StageSummary[] | null> {
  const stages = (row.policy as { stages?: unknown }).stages;
  if (!Array.isArray(stages)) return null;
  const percents = stages.map((stage) => Number((stage as { percent?: unknown }).percent));
  if (percents.length === 0 || percents.some((percent) => !Number.isFinite(percent))) return null;
  const ends = stageEnds(percents, row.deviceCount, { joined: row.joined });
  const counts = await countRolloutDevicesByStage(db, row.id, ends);
  return percents.map((percent, i) =>
    stageFigures(
      percent,
      ends[i]! - (i === 0 ? 0 : ends[i - 1]!),
      (state) => counts[i]?.[state] ?? 0,
    )
  );
}

/** Stored counts (only the states some device is in) with every other state at 0, as a live rollout's. */
function everyState(counts: Record<string, number>): Record<DeviceState, number> {
  return Object.fromEntries(DEVICE_STATES.map((state) => [state, counts[state] ?? 0])) as Record<
    DeviceState,
    number
  >;
}
