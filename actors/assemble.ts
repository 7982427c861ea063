/** Builds an engine's parts from its options and wires them to the engine's hooks. */
import type { Policy, PolicyProvenance } from "../policies/mod.ts";
import { abytes, newToken, TOKEN_BYTES } from "../srup/mod.ts";
import { deviceMachine } from "./device_machine.ts";
import { enterState, type ReactionOptions } from "./device_reactions.ts";
import { DeviceTable } from "./device_table.ts";
import { Dispatcher } from "./dispatch.ts";
import { Flights } from "./flights.ts";
import type { Clock, RolloutPorts } from "./ports.ts";
import { type EngineParts, restoreParts } from "./restore.ts";
import type { RolloutContext, RolloutReport } from "./rollout_machine.ts";
import type { RolloutSnapshot } from "./snapshot.ts";
import { stageEnds } from "./stages.ts";
import { planOf, Supervisor } from "./supervisor.ts";
import type { RolloutAction } from "./states.ts";
import { groupArray, WindowGate } from "./windows.ts";

/** Options of `createRolloutEngine()`. */
export interface RolloutEngineOptions {
  /** The rollout's id, carried by every event. */
  id: string;
  policy: Policy;
  /** Target device ids in rollout order; stage k covers the first ceil(percent_k% × n). */
  devices: readonly string[];
  /**
   * How many of `devices`, at the end, joined after creation (a dynamic rollout restored): they
   * belong to the last stage and move no stage boundary. Default 0.
   */
  joined?: number;
  clock: Clock;
  ports: RolloutPorts;
  /** Uniform [0, 1) for backoff jitter; default `Math.random`. Seed it for reproducible runs. */
  random?: () => number;
  /** Makes a fresh 16-byte token for each INITIATE; default srup's `newToken()`. */
  token?: () => Uint8Array;
  /** Where the policy came from, recorded in `rollout.started`. */
  provenance?: PolicyProvenance;
  /** Restore this rollout instead of starting afresh (from the engine's `snapshot()`). */
  snapshot?: RolloutSnapshot;
  /**
   * `rollback` or `rotate-key`: the `initiate` port sends a ROLLBACK or a KEY_ROTATE, and a
   * device's 0x10 to it activates it at once (no ACTIVATE); default `update`.
   */
  action?: RolloutAction;
  /**
   * Devices that already run the artifact: `skipped`, never contacted, and left out of their
   * stage's success figures (an update would only destroy their rollback copy).
   */
  skip?: readonly string[];
  /**
   * With maintenance windows per tag value (`windows.by`): each device's window group, aligned
   * with `devices` (see policies' `windowGrouper`; NO_WINDOW for a device whose window never
   * opens). Without `by` every device is in group 0 and this may be left out.
   */
  windowGroups?: ArrayLike<number>;
}

/** What the parts call back in the engine. */
export interface EngineHooks {
  /** Whether the device at `index`, which just reported 0x00, gets its ACTIVATE at once. */
  activatesNow(index: number): boolean;
  onReport(type: RolloutReport, context: RolloutContext): void;
  /** Does all the work now allowed (the settle loop). */
  settle(): void;
  /** A checked snapshot to restore from, or null. */
  restoring: RolloutSnapshot | null;
}

/** An engine's parts, wired, with what it was given. */
export interface Assembled extends EngineParts {
  /** The target list, which grows as devices join (dynamic targets). */
  devices: string[];
  reactions: ReactionOptions;
  clock: Clock;
  ports: RolloutPorts;
  provenance: PolicyProvenance | null;
  /** The policy's maintenance windows, or null. */
  windows: WindowGate | null;
  /** A fresh token for an INITIATE, checked for its length. */
  token(): Uint8Array;
}

/** Builds and wires the parts of an engine; restores them from `hooks.restoring` if given. */
export function assemble(options: RolloutEngineOptions, hooks: EngineHooks): Assembled {
  const { id, policy, clock, ports } = options;
  checkDevices(options.devices);
  const devices = [...options.devices];
  const joined = options.joined ?? 0;
  if (!Number.isInteger(joined) || joined < 0 || joined >= Math.max(1, devices.length)) {
    throw new RangeError(`Invalid joined count ${joined} for ${devices.length} devices`);
  }
  const restoring = hooks.restoring;
  if (restoring && restoring.rollout !== id) {
    throw new RangeError(
      `Cannot restore rollout "${id}": the snapshot is of "${restoring.rollout}"`,
    );
  }
  const table = new DeviceTable(
    devices.length,
    stageEnds(policy.stages.map((s) => s.percent), devices.length, { joined }),
  );
  let windows: WindowGate | null = null;
  if (policy.windows) {
    const groups = groupArray(policy.windows, devices.length, options.windowGroups);
    windows = new WindowGate(policy.windows, groups);
    table.trackGroups(groups);
  }
  const skip = new Set(options.skip ?? []);
  if (skip.size > 0) {
    devices.forEach((device, index) => {
      if (skip.has(device)) table.set(index, "skipped", 0, null);
    });
  }
  const logic = deviceMachine.provide({
    actions: {
      sendInitiate: ({ context, event }) => {
        if (event.type === "device.initiate") {
          ports.initiate(context.id, event.token, context.attempt);
        }
      },
      sendActivate: ({ context }) => {
        ports.activate(context.id, table.token(flights.get(context.id)!.index).slice());
      },
      report: ({ context, event }, { state }) => {
        enterState(flights.get(context.id)!, { state, attempt: context.attempt, event }, reactions);
      },
    },
    guards: {
      activateNow: ({ context }) => hooks.activatesNow(flights.get(context.id)!.index),
      single: () => (options.action ?? "update") !== "update",
    },
  });
  const flights = new Flights(logic, {
    retry: { attempts: policy.retry.attempts, on: policy.retry.on },
    clock,
    table,
    settle: hooks.settle,
    windows,
  });
  const supervisor = new Supervisor({
    id,
    plan: planOf(policy),
    clock,
    report: hooks.onReport,
    afterBake: hooks.settle,
    persisted: restoring?.machine,
  });
  const reactions: ReactionOptions = {
    id,
    policy,
    table,
    flights,
    clock,
    random: options.random ?? Math.random,
    emit: (event) => ports.event(event),
    activate: (device, token) => ports.activate(device, token),
    activatesNow: hooks.activatesNow,
    waitsForStage: () => policy.activation === "stage" && supervisor.phase !== "activating",
    windows,
  };
  const dispatch = new Dispatcher({
    policy,
    devices,
    table,
    flights,
    clock,
    onRateTimer: hooks.settle,
    windows,
  });
  const makeToken = options.token ?? newToken;
  const parts: Assembled = {
    id,
    policy,
    devices,
    table,
    flights,
    dispatch,
    supervisor,
    reactions,
    clock,
    ports,
    provenance: options.provenance ?? null,
    windows,
    token: () => abytes(makeToken(), TOKEN_BYTES, "token"),
  };
  if (restoring) restoreParts(parts, restoring);
  return parts;
}

function checkDevices(devices: readonly string[]): void {
  if (!Array.isArray(devices)) throw new TypeError("Expected devices to be an array of ids");
  const seen = new Set<string>();
  for (const id of devices) {
    if (typeof id !== "string" || id === "") {
      throw new TypeError(`Expected every device id to be a non-empty string: got ${String(id)}`);
    }
    if (seen.has(id)) throw new RangeError(`Duplicate device "${id}" in the target list`);
    seen.add(id);
  }
}
