/**
 * Creating a rollout as a use case: resolve the policy, the artifact and the targets, then let the
 * orchestrator create and start it. A refusal writes nothing, not even an artifact given by url.
 */
import {
  artifactUrl,
  ConflictError,
  countRegistered,
  countRotationTargets,
  countWithPrevious,
  type Db,
  getArtifact,
  InvalidDataError,
  listActiveRollouts,
  type Rollout,
  selectDeviceIds,
} from "../db/mod.ts";
import { type RolloutAction, stageEnds } from "../actors/mod.ts";
import { decodeManifest, verifyManifest } from "../srup/mod.ts";
import {
  type LoadedPolicy,
  NO_WINDOW,
  parseStartAt,
  type Policy,
  PolicyError,
  validatePolicy,
  windowGroupNames,
} from "../policies/mod.ts";
import { InsufficientHeapError } from "./heap_budget.ts";
import type { Orchestrator } from "./orchestrator.ts";
import type { PolicyRegistry } from "./policy_registry.ts";
import type { ServerKey } from "./server_key.ts";
import { describeUnmatched, type WindowGroups, windowGroupsOf } from "./window_groups.ts";

/** Why a rollout was refused; the API answers each with its own status. */
export type RolloutRefusal =
  | "unknown_policy"
  | "invalid_policy"
  | "inconsistent_policy"
  | "unknown_artifact"
  | "no_devices"
  | "invalid_targets"
  | "devices_busy"
  | "nothing_to_roll_back"
  | "nothing_to_rotate"
  | "rotation_running"
  | "insufficient_memory"
  | "invalid_start_at"
  | "start_in_past"
  | "dynamic_ids"
  | "unsigned_artifact"
  | "no_window";

/** A rollout that cannot be created as asked; nothing was written. */
export class RolloutRefusedError extends Error {
  readonly code: RolloutRefusal;
  readonly details: unknown;

  constructor(code: RolloutRefusal, message: string, options: { details?: unknown } = {}) {
    super(message);
    this.name = "RolloutRefusedError";
    this.code = code;
    this.details = options.details ?? null;
  }
}

/** Which devices a rollout targets, as the operator wrote it. */
export type RolloutTargets =
  | { all: true }
  | { ids: readonly string[] }
  | { tags: Record<string, string> };

/** A rollout as an operator asks for it. */
export interface NewRolloutInput {
  /** `rollback` sends each device back to its recorded previous version; default `update`. */
  action?: RolloutAction;
  /**
   * A stored artifact's digest, or a digest and the url of a file hosted elsewhere; required for
   * an update, absent for a rollback.
   */
  artifact?: { digest: string; url?: string };
  /** A loaded policy's name, or an inline policy object. */
  policy: string | Record<string, unknown>;
  targets: RolloutTargets;
  /** The token name that asked for it. */
  actor: string;
  /** Optional words for operators. */
  name?: string;
  description?: string;
  /** ISO 8601 time with an offset to start at; overrides the policy's `startAt`. */
  startAt?: string;
}

/** What creating a rollout needs. */
export interface CreateRolloutDeps {
  db: Db;
  orchestrator: Orchestrator;
  policies: PolicyRegistry;
  /** Base URL devices fetch stored artifacts from. */
  publicUrl: string;
  /**
   * [SRUP-10] The server's next key for a key rotation: the one it has, or one read or made now
   * (and taken into the orchestrator's key ring); absent, no key rotation can be created.
   */
  nextKey?: () => Promise<ServerKey>;
}

/** Creates and starts a rollout; RolloutRefusedError when it cannot be created as asked. */
export async function startRollout(
  deps: CreateRolloutDeps,
  input: NewRolloutInput,
): Promise<Rollout> {
  const { db, orchestrator } = deps;
  const action = input.action ?? "update";
  if (action === "rotate-key") await refuseRunningRotation(db);
  const loaded = resolvePolicy(deps.policies, input.policy);
  const startAt = resolveStartAt(input.startAt ?? loaded.policy.startAt, orchestrator.now());
  if (loaded.policy.dynamic && "ids" in input.targets) {
    throw new RolloutRefusedError(
      "dynamic_ids",
      'A dynamic policy needs "tags" or "all" targets: "ids" name a fixed set of devices, which no device can come to match',
    );
  }
  const artifact = action === "update" ? await resolveArtifact(deps, input.artifact) : null;
  const releaseKeys = orchestrator.releaseKeys;
  // A rollback installs nothing new: each device goes back to a version it already ran.
  if (artifact && releaseKeys.length > 0 && !loaded.policy.allowUnsigned) {
    const why = await unsignedReason(artifact.manifest, releaseKeys, Date.now());
    if (why) {
      throw new RolloutRefusedError(
        "unsigned_artifact",
        `Cannot roll out artifact "${artifact.digest}": ${why} (a policy with allowUnsigned: true allows it, for development)`,
      );
    }
  }
  const targets = input.targets;
  const deviceIds = "ids" in targets
    ? targets.ids.map((id) => id.toLowerCase())
    : await selectDeviceIds(db, "tags" in targets ? { tags: targets.tags } : {});
  if (deviceIds.length === 0) {
    throw new RolloutRefusedError("no_devices", "The targets select no registered device");
  }
  if (action === "rollback" && await countWithPrevious(db, deviceIds) === 0) {
    throw new RolloutRefusedError(
      "nothing_to_roll_back",
      `None of the ${deviceIds.length} targeted device(s) has a previous version recorded`,
    );
  }
  const serverKey = action === "rotate-key" ? await rotationKey(deps, deviceIds) : undefined;
  const windows = await windowGroupsOf(db, loaded.policy, deviceIds);
  if (windows && windows.unmatched.size > 0) {
    // A device with no window would never be updated: refused now rather than waiting forever.
    const by = loaded.policy.windows!.by!;
    throw new RolloutRefusedError(
      "no_window",
      `Devices have no maintenance window: ${
        describeUnmatched(by, windows.unmatched)
      }; add their ${by} to windows.groups, or windows.open for every other device`,
      {
        details: [...windows.unmatched].map(([value, devices]) => ({ [by]: value, devices })),
      },
    );
  }
  try {
    return await orchestrator.create({
      artifact,
      action,
      serverKey,
      loaded,
      targets: targets as Record<string, unknown>,
      deviceIds,
      windowGroups: windows?.groups,
      actor: input.actor,
      name: input.name,
      description: input.description,
      startAt,
    });
  } catch (error) {
    if (error instanceof ConflictError) {
      throw new RolloutRefusedError("devices_busy", error.message);
    }
    if (error instanceof InvalidDataError) {
      throw new RolloutRefusedError("invalid_targets", error.message);
    }
    if (error instanceof InsufficientHeapError) {
      throw new RolloutRefusedError("insufficient_memory", error.message);
    }
    throw error;
  }
}

/** [SRUP-10] 409 while a key rotation is scheduled, running or paused: one key moves at a time. */
async function refuseRunningRotation(db: Db): Promise<void> {
  const running = (await listActiveRollouts(db)).find((row) => row.action === "rotate-key");
  if (running) {
    throw new RolloutRefusedError(
      "rotation_running",
      `Key rotation "${running.id}" is ${running.state}: cancel it or let it finish first`,
      { details: { rollout: running.id, state: running.state } },
    );
  }
}

/**
 * [SRUP-10] The fingerprint of the key a rotation moves these devices to: the next key, made now
 * if there is none yet; refused when none of them would be sent it: every one trusts it already
 * or is registered with frame version 1, which has no KEY_ROTATE.
 */
async function rotationKey(deps: CreateRolloutDeps, deviceIds: readonly string[]): Promise<string> {
  if (!deps.nextKey) {
    throw new TypeError("Cannot rotate the server key: no key store is configured");
  }
  const known = deps.orchestrator.keys?.next;
  const targets = await countRotationTargets(deps.db, deviceIds, known?.fingerprint ?? null);
  if (targets.rotatable === 0) {
    const reasons = [
      ...(targets.trusted > 0
        ? [`${targets.trusted} trust the next server key "${known?.fingerprint}" already`]
        : []),
      ...(targets.frameVersion1 > 0
        ? [`${targets.frameVersion1} registered with frame version 1, which has no KEY_ROTATE`]
        : []),
    ];
    throw new RolloutRefusedError(
      "nothing_to_rotate",
      `None of the ${deviceIds.length} targeted device(s) can be sent a KEY_ROTATE: ${
        reasons.join(", ")
      } (docs/operations.md, "Rotating the server key")`,
      { details: { trusted: targets.trusted, frameVersion1: targets.frameVersion1 } },
    );
  }
  return (await deps.nextKey()).fingerprint;
}

/** What a rollout would be, computed without creating it. */
export interface RolloutPreview {
  policy: LoadedPolicy;
  /** Registered devices the targets select. */
  devices: number;
  /** Each stage's cumulative percent and the devices it adds. */
  stages: { percent: number; devices: number }[];
  /**
   * With maintenance windows by tag value: the devices per window group (null: the `open`
   * fallback), and per tag value those with no window, which would refuse the rollout (no_window).
   */
  windows: {
    by: string;
    groups: { group: string | null; devices: number }[];
    unmatched: { value: string | null; devices: number }[];
  } | null;
}

/** What a rollout of these targets under this policy would look like; writes nothing. */
export async function previewRollout(
  deps: Pick<CreateRolloutDeps, "db" | "policies">,
  input: Pick<NewRolloutInput, "policy" | "targets">,
): Promise<RolloutPreview> {
  const policy = resolvePolicy(deps.policies, input.policy);
  const targets = input.targets;
  const ids = "ids" in targets
    ? [...new Set(targets.ids.map((id) => id.toLowerCase()))]
    : await selectDeviceIds(deps.db, "tags" in targets ? { tags: targets.tags } : {});
  const devices = "ids" in targets ? await countRegistered(deps.db, ids) : ids.length;
  const windows = await windowGroupsOf(deps.db, policy.policy, ids);
  const percents = policy.policy.stages.map((stage) => stage.percent);
  const ends = stageEnds(percents, devices);
  return {
    policy,
    devices,
    stages: percents.map((percent, i) => ({
      percent,
      devices: ends[i]! - (i === 0 ? 0 : ends[i - 1]!),
    })),
    windows: windows ? previewWindows(policy.policy, windows) : null,
  };
}

/** A start time's clock time, or null; refused when malformed or already past at `now`. */
function resolveStartAt(text: string | undefined, now: number): number | null {
  if (text === undefined) return null;
  let at: number;
  try {
    at = parseStartAt(text);
  } catch (error) {
    throw new RolloutRefusedError("invalid_start_at", (error as Error).message);
  }
  if (at < now) {
    throw new RolloutRefusedError(
      "start_in_past",
      `Cannot schedule rollout: start time "${text}" is in the past (it is now ${
        new Date(now).toISOString()
      })`,
    );
  }
  return at;
}

function previewWindows(policy: Policy, windows: WindowGroups): RolloutPreview["windows"] {
  const names = windowGroupNames(policy.windows!);
  const counts = new Array<number>(names.length).fill(0);
  for (const group of windows.groups) if (group !== NO_WINDOW) counts[group]!++;
  return {
    by: policy.windows!.by!,
    groups: names.map((group, i) => ({ group, devices: counts[i]! })),
    unmatched: [...windows.unmatched].map(([value, devices]) => ({ value, devices })),
  };
}

async function resolveArtifact(
  deps: CreateRolloutDeps,
  given: NewRolloutInput["artifact"],
): Promise<{ digest: string; url: string; register?: boolean; manifest: string | null }> {
  if (!given) throw new TypeError("Cannot create rollout: an update needs an artifact");
  const stored = await getArtifact(deps.db, given.digest);
  if (stored) {
    const url = artifactUrl(stored, deps.publicUrl);
    return { digest: stored.digest, url, manifest: stored.manifest ?? null };
  }
  if (given.url === undefined) {
    throw new RolloutRefusedError(
      "unknown_artifact",
      `No artifact "${given.digest}": upload it or give its url`,
    );
  }
  return { digest: given.digest, url: given.url, register: true, manifest: null };
}

/** [SRUP-7] Why a stored manifest does not let the artifact roll out, or undefined when it does. */
async function unsignedReason(
  manifest: string | null,
  releaseKeys: readonly Uint8Array[],
  now: number,
): Promise<string | undefined> {
  if (manifest === null) return "it has no release manifest";
  let decoded;
  try {
    decoded = decodeManifest(Uint8Array.fromBase64(manifest));
  } catch (error) {
    return `its manifest is malformed: ${(error as Error).message}`;
  }
  if (!await verifyManifest(decoded, releaseKeys)) {
    return "its manifest is not signed by a configured release key";
  }
  if (decoded.expiresAt !== undefined && decoded.expiresAt <= now) {
    return `its release expired at ${new Date(decoded.expiresAt).toISOString()}`;
  }
  return undefined;
}

function resolvePolicy(
  policies: PolicyRegistry,
  policy: string | Record<string, unknown>,
): LoadedPolicy {
  if (typeof policy === "string") {
    const loaded = policies.get(policy);
    if (!loaded) {
      throw new RolloutRefusedError("unknown_policy", `No policy "${policy}"`, {
        details: { known: policies.list().map((p) => p.policy.name) },
      });
    }
    return loaded;
  }
  try {
    return validatePolicy(policy, { source: "inline" });
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    throw new RolloutRefusedError(
      error.inconsistent ? "inconsistent_policy" : "invalid_policy",
      error.message,
      { details: error.issues },
    );
  }
}
