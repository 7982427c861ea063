/**
 * When windows are open: pure functions of a time in milliseconds (no clock is read). A window opens
 * at each time its cron fires in its time zone (croner does the calendar and DST arithmetic) and
 * stays open for its duration of elapsed time.
 */
import type { Cron } from "croner";
import { cronOf, type MaintenanceWindow, type Windows } from "./windows.ts";

// Overlapping or adjoining windows close together; past this many links a calendar is open forever.
const MAX_CHAIN = 1000;

/** The union of some recurring windows (one group's), answering questions about a time `t`. */
export class WindowCalendar {
  readonly windows: readonly MaintenanceWindow[];
  readonly #crons: readonly Cron[];

  constructor(windows: readonly MaintenanceWindow[]) {
    this.windows = windows;
    this.#crons = windows.map((w) => cronOf(w.start, w.timeZone));
  }

  /** Whether some window is open at `t`: it opened at or before `t` and `t` is before its end. */
  isOpen(t: number): boolean {
    return this.#coverEnd(t) > t;
  }

  /** The first time at or after `t` a window is open (`t` itself when open), or null if never. */
  nextOpen(t: number): number | null {
    if (this.isOpen(t)) return t;
    let first: number | null = null;
    for (const cron of this.#crons) {
      const at = cron.nextRun(new Date(t))?.getTime() ?? null;
      if (at !== null && (first === null || at < first)) first = at;
    }
    return first;
  }

  /**
   * When the windows open at `t` close (overlapping and adjoining windows count as one), `t` when
   * none is open, or null when they never close.
   */
  nextClose(t: number): number | null {
    let end = t;
    for (let link = 0; link < MAX_CHAIN; link++) {
      const next = this.#coverEnd(end);
      if (next <= end) return end;
      end = next;
    }
    return null;
  }

  /** The latest end of the windows open at `t`, or -Infinity when none is. */
  #coverEnd(t: number): number {
    let end = -Infinity;
    this.#crons.forEach((cron, i) => {
      const duration = this.windows[i]!.duration;
      // The latest start at or before t (croner's reference is exclusive, and to the second).
      const [start] = cron.previousRuns(1, new Date(t + 1));
      if (start === undefined) return;
      const close = start.getTime() + duration;
      if (close > t && close > end) end = close;
    });
    return end;
  }
}

/** Group index of a device whose tag value has no windows and the policy no fallback: never open. */
export const NO_WINDOW = 255;

/** The `groups` keys in name order: a stored policy (jsonb) does not keep the file's key order. */
function groupKeys(windows: Windows): string[] {
  return Object.keys(windows.groups ?? {}).sort();
}

/**
 * The window groups of a policy's `windows`, in index order: each `groups` key in name order, then
 * the fallback (`open`, named null). Without `by`, one group: null.
 */
export function windowGroupNames(windows: Windows): (string | null)[] {
  const names: (string | null)[] = groupKeys(windows);
  if (windows.open) names.push(null);
  return names;
}

/** One calendar per group, in the order of {@linkcode windowGroupNames}. */
export function windowCalendars(windows: Windows): WindowCalendar[] {
  const lists = groupKeys(windows).map((key) => windows.groups![key]!);
  if (windows.open) lists.push(windows.open);
  return lists.map((list) => new WindowCalendar(list));
}

/**
 * Maps a device's `by` tag value (undefined or null: no such tag) to its group index: the value's
 * group, else the fallback (`open`), else {@linkcode NO_WINDOW}. Always 0 without `by`.
 */
export function windowGrouper(windows: Windows): (value: string | null | undefined) => number {
  if (windows.by === undefined) return () => 0;
  const index = new Map(groupKeys(windows).map((name, i) => [name, i]));
  const fallback = windows.open ? index.size : NO_WINDOW;
  return (value) =>
    (value === undefined || value === null ? undefined : index.get(value)) ?? fallback;
}
