/**
 * A rollout as data and back: the engine's snapshot, its restore, and the snapshot a store rebuilds
 * from its per-device rows and the rollout's head. Pure: time and tokens are handed in.
 */
import type { Policy } from "../policies/mod.ts";
import { abytes, toHex, TOKEN_BYTES } from "../srup/mod.ts";
import type { DeviceTable } from "./device_table.ts";
import type { Dispatcher } from "./dispatch.ts";
import type { Flights } from "./flights.ts";
import { RateLimiter } from "./rate_limit.ts";
import type { DeviceRecord, IgnoredCounts, RolloutSnapshot } from "./snapshot.ts";
import { planOf, Supervisor } from "./supervisor.ts";
import { IN_FLIGHT_STATES, isRecordState } from "./states.ts";
import type { ThresholdCounts } from "./threshold.ts";

/** The parts of an engine a snapshot reads and a restore fills. */
export interface EngineParts {
  id: string;
  policy: Policy;
  devices: readonly string[];
  table: DeviceTable;
  flights: Flights;
  dispatch: Dispatcher;
  supervisor: Supervisor;
}

/** What a snapshot holds besides the parts. */
export interface SnapshotExtras {
  at: number;
  thresholdBase: ThresholdCounts;
  ignored: IgnoredCounts;
  /** False for the rollout-level head a store keeps beside its per-device rows. */
  devices: boolean;
}

/** The whole rollout as plain JSON. */
export function takeSnapshot(parts: EngineParts, extras: SnapshotExtras): RolloutSnapshot {
  const { table, flights, dispatch } = parts;
  const devices: DeviceRecord[] = [];
  const end = extras.devices ? dispatch.cursor : 0;
  for (let index = 0; index < end; index++) {
    const state = table.state(index);
    if (state === "pending" || state === "timed_out" || state === "skipped") continue;
    const id = parts.devices[index]!;
    devices.push(table.record(id, index, flights.live(id)?.deadline ?? null));
  }
  return {
    format: 1,
    rollout: parts.id,
    at: extras.at,
    machine: parts.supervisor.persisted(),
    cursor: dispatch.cursor,
    activationCursor: dispatch.activationCursor,
    rateNext: dispatch.rate?.next ?? null,
    thresholdBase: { ...extras.thresholdBase },
    ignored: { ...extras.ignored },
    devices,
  };
}

const OPEN: ReadonlySet<string> = new Set(IN_FLIGHT_STATES);

/** Fills restored parts from a checked snapshot: device records, flights, cursors, rate. */
export function restoreParts(parts: EngineParts, snapshot: RolloutSnapshot): void {
  const { table, flights, dispatch, supervisor, policy } = parts;
  const positions = new Map<string, number>();
  parts.devices.forEach((id, index) => positions.set(id, index));
  const phase = supervisor.phase;
  // Received devices are in flight in immediate mode, or once the activation cursor passed them.
  const inFlightReceived = (index: number) =>
    policy.activation === "immediate" ||
    (phase === "activating" && index < snapshot.activationCursor);
  let cursor = 0;
  for (const record of snapshot.devices) {
    const index = positions.get(record.id);
    if (index === undefined) {
      throw new RangeError(`Cannot restore rollout "${parts.id}": unknown device "${record.id}"`);
    }
    cursor = Math.max(cursor, index + 1);
    table.set(index, record.state, record.attempt, record.lastStatus);
    table.setToken(index, Uint8Array.fromHex(record.token));
    if (supervisor.over) continue;
    if (record.state === "received") {
      if (inFlightReceived(index)) flights.held.add(flights.open(record.id, index, record));
    } else if (OPEN.has(record.state)) {
      flights.open(record.id, index, record);
    }
  }
  if (snapshot.cursor < cursor) {
    throw new RangeError(
      `Cannot restore rollout "${parts.id}": cursor ${snapshot.cursor} is before a started device`,
    );
  }
  dispatch.cursor = snapshot.cursor;
  dispatch.activationCursor = snapshot.activationCursor;
  // Maintenance windows: devices the cursor passed that never started wait for their window again.
  if (!supervisor.over) dispatch.requeue();
  if (policy.rate) dispatch.rate = new RateLimiter(policy.rate, snapshot.rateNext);
}

/** The head of a rollout that started but whose head was never stored: just started, at `at`. */
export function initialHead(
  id: string,
  policy: Policy,
  options: { at: number },
): RolloutSnapshot {
  const idle = { setTimeout: () => null, clearTimeout() {}, now: () => options.at };
  const supervisor = new Supervisor({
    id,
    plan: planOf(policy),
    clock: idle,
    report() {},
    afterBake() {},
  });
  supervisor.send({ type: "rollout.start" });
  const machine = supervisor.persisted();
  supervisor.stop();
  return {
    format: 1,
    rollout: id,
    at: options.at,
    machine,
    cursor: 0,
    activationCursor: 0,
    rateNext: null,
    thresholdBase: { failed: 0, ok: 0 },
    ignored: { staleToken: 0, notInFlight: 0, unexpected: 0 },
    devices: [],
  };
}

/** A device's stored row, as a store reads it back. */
export interface StartedRow {
  deviceId: string;
  position: number;
  state: string;
  token: string | null;
  attempt: number;
  deadline: number | null;
  lastStatus: number | null;
}

/** What rebuilding a snapshot from rows needs. */
export interface FromRowsOptions {
  policy: Policy;
  /** Target device ids in rollout order. */
  deviceIds: readonly string[];
  /** Rows of the devices that started. */
  started: readonly StartedRow[];
  now: number;
  /** Makes a fresh token for a device to retry. */
  token: () => Uint8Array;
}

/**
 * Rebuilds an engine snapshot: the device rows are the truth, the stored head (written after
 * them) gives the rest. A device whose row is missing before the last started one (its batch
 * failed to commit) is retried at once, since its INITIATE may or may not have gone out; with
 * maintenance windows it stays pending and waits for its window again.
 * Undefined when the rollout has neither rows nor a head: it starts afresh.
 */
export function snapshotFromRows(
  id: string,
  head: RolloutSnapshot | null,
  options: FromRowsOptions,
): RolloutSnapshot | undefined {
  const { started, deviceIds, now } = options;
  if (started.length === 0 && head === null) return undefined;
  const base = head ?? initialHead(id, options.policy, { at: now });
  const byPosition = new Map(started.map((device) => [device.position, device]));
  // Skipped rows are written at creation: they say nothing of how far dispatch got.
  const last = started.reduce(
    (max, device) => device.state === "skipped" ? max : Math.max(max, device.position),
    -1,
  );
  const devices: DeviceRecord[] = [];
  for (let position = 0; position <= last; position++) {
    const row = byPosition.get(position);
    // Skipped at creation: never contacted, nothing to retry; the engine is told apart.
    if (row?.state === "skipped") continue;
    if (row && isRecordState(row.state) && row.token) {
      devices.push({
        id: row.deviceId,
        state: row.state,
        token: row.token,
        attempt: Math.max(1, row.attempt),
        deadline: row.deadline,
        lastStatus: row.lastStatus,
      });
      continue;
    }
    // With windows, devices after one not started are normal (it waits for its window), and a
    // send waits for its row's commit: a device without a row got no INITIATE, so it stays pending.
    if (options.policy.windows) continue;
    devices.push({
      id: deviceIds[position]!,
      state: "retrying",
      token: toHex(abytes(options.token(), TOKEN_BYTES, "token")),
      attempt: Math.max(1, row?.attempt ?? 1),
      deadline: now,
      lastStatus: null,
    });
  }
  return { ...base, devices, cursor: Math.max(base.cursor, last + 1) };
}
