/**
 * The engine's view of a policy's maintenance windows: each device's window group, and whether a
 * group is open at a clock time. Each group's answer is cached until its next opening or closing,
 * so asking per device costs a comparison.
 */
import {
  NO_WINDOW,
  type WindowCalendar,
  windowCalendars,
  windowGroupNames,
  type Windows,
} from "../policies/mod.ts";

/** One window group's state at a time, as the summary shows it. */
export interface WindowGroupStatus {
  /** The `by` tag value, or null for the policy's `open` windows (every device, or the fallback). */
  group: string | null;
  open: boolean;
  /** Clock time it next opens (the time asked about when open), or null when it never does. */
  nextOpen: number | null;
  /** Clock time the open window closes, or null (closed now, or never closes). */
  nextClose: number | null;
}

/** Windows of one rollout, per device. */
export class WindowGate {
  /** `onClose: hold`: an ACTIVATE, too, waits for the device's window. */
  readonly holdsActivate: boolean;
  readonly names: readonly (string | null)[];
  readonly #calendars: readonly WindowCalendar[];
  readonly #groups: Uint8Array;
  // Per group: open or not from `#from` until `#until` (its next change).
  readonly #open: boolean[];
  readonly #from: Float64Array;
  readonly #until: Float64Array;

  constructor(windows: Windows, groups: Uint8Array) {
    this.holdsActivate = windows.onClose === "hold";
    this.names = windowGroupNames(windows);
    this.#calendars = windowCalendars(windows);
    this.#groups = groups;
    const size = this.names.length;
    this.#open = new Array(size).fill(false);
    this.#from = new Float64Array(size).fill(Infinity);
    this.#until = new Float64Array(size).fill(-Infinity);
  }

  /** The window group of device `index` (NO_WINDOW: none, never open). */
  group(index: number): number {
    return this.#groups[index]!;
  }

  /** Whether group `group` is open at clock time `t`. */
  groupOpen(group: number, t: number): boolean {
    if (group === NO_WINDOW) return false;
    this.#refresh(group, t);
    return this.#open[group]!;
  }

  /** Whether device `index`'s window is open at `t`. */
  isOpen(index: number, t: number): boolean {
    return this.groupOpen(this.#groups[index]!, t);
  }

  /** The first time at or after `t` group `group` is open, or null when it never is. */
  groupNextOpen(group: number, t: number): number | null {
    if (group === NO_WINDOW) return null;
    this.#refresh(group, t);
    if (this.#open[group]) return t;
    const at = this.#until[group]!;
    return at === Infinity ? null : at;
  }

  /**
   * The first time at or after `t` device `index`'s window is open, or null when never. For a `t`
   * ahead of the clock (a retry's end) the cache is left as it is: it follows the clock.
   */
  nextOpen(index: number, t: number): number | null {
    const group = this.#groups[index]!;
    if (group === NO_WINDOW) return null;
    const until = this.#until[group]!;
    if (t >= this.#from[group]! && t < until) {
      return this.#open[group] ? t : until === Infinity ? null : until;
    }
    return this.#calendars[group]!.nextOpen(t);
  }

  /** Every group's state at `t`. */
  status(t: number): WindowGroupStatus[] {
    return this.names.map((group, index) => {
      const open = this.groupOpen(index, t);
      const until = this.#until[index]!;
      return {
        group,
        open,
        nextOpen: this.groupNextOpen(index, t),
        nextClose: open && until !== Infinity ? until : null,
      };
    });
  }

  #refresh(group: number, t: number): void {
    if (t >= this.#from[group]! && t < this.#until[group]!) return;
    const calendar = this.#calendars[group]!;
    const open = calendar.isOpen(t);
    this.#open[group] = open;
    this.#from[group] = t;
    this.#until[group] = (open ? calendar.nextClose(t) : calendar.nextOpen(t)) ?? Infinity;
  }
}

/**
 * Each device's group index as the engine keeps it (one byte per device), checked: as many as the
 * devices, each a group of the policy or NO_WINDOW. Without `by`, every device is in group 0.
 */
export function groupArray(
  windows: Windows,
  devices: number,
  groups: ArrayLike<number> | undefined,
): Uint8Array {
  if (groups === undefined) {
    if (windows.by !== undefined) {
      throw new TypeError(
        `Expected windowGroups: the policy's windows are per "${windows.by}" value`,
      );
    }
    return new Uint8Array(devices);
  }
  if (groups.length !== devices) {
    throw new RangeError(
      `Expected one window group per device: got ${groups.length} for ${devices} devices`,
    );
  }
  const size = windowGroupNames(windows).length;
  const array = new Uint8Array(devices);
  for (let i = 0; i < devices; i++) {
    const group = groups[i]!;
    if (!(Number.isInteger(group) && ((group >= 0 && group < size) || group === NO_WINDOW))) {
      throw new RangeError(`Invalid window group ${group} of device ${i}: the policy has ${size}`);
    }
    array[i] = group;
  }
  return array;
}
