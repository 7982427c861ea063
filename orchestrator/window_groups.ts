/**
 * Each target device's maintenance window group, from its tags: computed at creation and again at
 * recovery (the groups are not stored; a device's tag is read when its rollout is loaded).
 */
import { type Db, loadTagValues } from "../db/mod.ts";
import { NO_WINDOW, type Policy, windowGrouper } from "../policies/mod.ts";

/** The devices' window groups, and the `by` values (null: no such tag) that have no window. */
export interface WindowGroups {
  groups: Uint8Array;
  /** Devices per tag value that matched no group while the policy has no fallback (`open`). */
  unmatched: Map<string | null, number>;
}

/** Window groups of `deviceIds` (in rollout order) under `policy`; undefined without `windows.by`. */
export async function windowGroupsOf(
  db: Db,
  policy: Policy,
  deviceIds: readonly string[],
): Promise<WindowGroups | undefined> {
  const windows = policy.windows;
  if (windows?.by === undefined) return undefined;
  const values = await loadTagValues(db, deviceIds, windows.by);
  const grouper = windowGrouper(windows);
  const groups = new Uint8Array(deviceIds.length);
  const unmatched = new Map<string | null, number>();
  deviceIds.forEach((id, index) => {
    const value = values.get(id) ?? null;
    const group = grouper(value);
    groups[index] = group;
    if (group === NO_WINDOW) unmatched.set(value, (unmatched.get(value) ?? 0) + 1);
  });
  return { groups, unmatched };
}

/** The unmatched devices in words: `3 with site "paris", 1 without a site tag`. */
export function describeUnmatched(by: string, unmatched: Map<string | null, number>): string {
  const parts = [...unmatched].slice(0, 10).map(([value, n]) =>
    value === null ? `${n} without a ${by} tag` : `${n} with ${by} "${value}"`
  );
  if (unmatched.size > 10) parts.push(`and ${unmatched.size - 10} more values`);
  return parts.join(", ");
}
