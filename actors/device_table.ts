/**
 * Compact per-device records for a whole fleet: a few bytes per device in typed arrays, plus running
 * counts per state, per stage and per attempt. This is the only fleet-sized memory of an engine.
 */
import { toHex, TOKEN_BYTES } from "../srup/mod.ts";
import type { DeviceRecord } from "./snapshot.ts";
import { DEVICE_STATES, type DeviceState, type RecordState, STATE_CODE } from "./states.ts";
import { stageOf } from "./stages.ts";

const STATES = DEVICE_STATES.length;
const NO_STATUS = -1;
const PENDING = STATE_CODE.pending;
// A window group is a byte: every value has a slot, NO_WINDOW (255) included.
const GROUP_SLOTS = 256;

/** The per-device arrays and counters of one rollout; the one place a device's token is held. */
export class DeviceTable {
  readonly size: number;
  readonly ends: readonly number[];
  #state: Uint8Array;
  #attempt: Uint8Array;
  #lastStatus: Int16Array;
  #tokens: Uint8Array;
  #counts: Float64Array;
  #stageCounts: Float64Array;
  #attempts: number[] = [];
  /** Maintenance windows: each device's window group, and pending devices per stage and group. */
  #groups: Uint8Array | null = null;
  #groupPending: Float64Array | null = null;

  constructor(size: number, ends: readonly number[]) {
    this.size = size;
    this.ends = ends;
    this.#state = new Uint8Array(size);
    this.#attempt = new Uint8Array(size);
    this.#lastStatus = new Int16Array(size).fill(NO_STATUS);
    this.#tokens = new Uint8Array(size * TOKEN_BYTES);
    this.#counts = new Float64Array(STATES);
    this.#counts[STATE_CODE.pending] = size;
    this.#stageCounts = new Float64Array(ends.length * STATES);
    ends.forEach((end, stage) => {
      this.#stageCounts[stage * STATES] = end - (ends[stage - 1] ?? 0);
    });
  }

  state(index: number): DeviceState {
    return DEVICE_STATES[this.#state[index]!]!;
  }

  attempt(index: number): number {
    return this.#attempt[index]!;
  }

  lastStatus(index: number): number | null {
    const status = this.#lastStatus[index]!;
    return status === NO_STATUS ? null : status;
  }

  token(index: number): Uint8Array {
    return this.#tokens.subarray(index * TOKEN_BYTES, (index + 1) * TOKEN_BYTES);
  }

  /** The record of started device `id` at `index`. */
  record(id: string, index: number, deadline: number | null): DeviceRecord {
    return {
      id,
      state: this.state(index) as RecordState,
      token: toHex(this.token(index)),
      attempt: this.attempt(index),
      deadline,
      lastStatus: this.lastStatus(index),
    };
  }

  /** Records a device's state, attempt and last status, keeping every count in step. */
  set(index: number, state: DeviceState, attempt: number, lastStatus: number | null): void {
    const from = this.#state[index]!;
    const to = STATE_CODE[state];
    if (from !== to) {
      const stage = stageOf(this.ends, index);
      const base = stage * STATES;
      if (this.#groupPending && (from === PENDING || to === PENDING)) {
        this.#groupPending[stage * GROUP_SLOTS + this.#groups![index]!]! += from === PENDING
          ? -1
          : 1;
      }
      this.#counts[from]!--;
      this.#counts[to]!++;
      this.#stageCounts[base + from]!--;
      this.#stageCounts[base + to]!++;
      this.#state[index] = to;
    }
    const previous = this.#attempt[index]!;
    if (previous !== attempt) {
      if (previous > 0) this.#attempts[previous]!--;
      this.#attempts[attempt] = (this.#attempts[attempt] ?? 0) + 1;
      this.#attempt[index] = attempt;
    }
    this.#lastStatus[index] = lastStatus ?? NO_STATUS;
  }

  /** Counts pending devices per stage and window group from now on (call before any `set`). */
  trackGroups(groups: Uint8Array): void {
    this.#groups = groups;
    this.#groupPending = new Float64Array(this.ends.length * GROUP_SLOTS);
    for (let index = 0; index < this.size; index++) {
      if (this.#state[index] !== PENDING) continue;
      this.#groupPending[stageOf(this.ends, index) * GROUP_SLOTS + groups[index]!]!++;
    }
  }

  /** Pending devices of stage `stage` in window group `group` (0 when groups are not tracked). */
  groupPending(stage: number, group: number): number {
    return this.#groupPending?.[stage * GROUP_SLOTS + group] ?? 0;
  }

  setToken(index: number, token: Uint8Array): void {
    this.#tokens.set(token, index * TOKEN_BYTES);
  }

  /** Devices in `state`, fleet-wide. */
  count(state: DeviceState): number {
    return this.#counts[STATE_CODE[state]]!;
  }

  /** Devices of stage `stage` in `state`. */
  stageCount(stage: number, state: DeviceState): number {
    return this.#stageCounts[stage * STATES + STATE_CODE[state]]!;
  }

  /** Devices in stage `stage` alone (not cumulative). */
  stageSize(stage: number): number {
    return this.ends[stage]! - (this.ends[stage - 1] ?? 0);
  }

  /** Devices per state name. */
  counts(): Record<DeviceState, number> {
    return Object.fromEntries(
      DEVICE_STATES.map((state, code) => [state, this.#counts[code]!]),
    ) as Record<DeviceState, number>;
  }

  /** Started devices by number of INITIATE attempts: `{ "1": 980, "2": 19, "3": 1 }`. */
  attemptHistogram(): Record<string, number> {
    const histogram: Record<string, number> = {};
    this.#attempts.forEach((count, attempts) => {
      if (count > 0) histogram[attempts] = count;
    });
    return histogram;
  }
}
