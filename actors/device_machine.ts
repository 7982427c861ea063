/**
 * One device in a rollout: idle → initiated → received → activating → activated, with retrying,
 * timed_out, failed and cancelled. The machine holds no timers and does no I/O: the engine sends
 * `device.timeout` when a deadline passes, and the sends are the injected `sendInitiate` and
 * `sendActivate` actions. In a rollback or key rotation `sendInitiate` sends a ROLLBACK ([SRUP-9])
 * or a KEY_ROTATE ([SRUP-10]), whose one RESPONSE settles the device: initiated → activated on
 * 0x10, failed on anything else.
 */
import { and, assign, setup } from "xstate";
import {
  ACTIVATE_FAIL,
  ACTIVATE_SUCCESS,
  toHex,
  UPDATE_FAIL_DIGEST,
  UPDATE_FAIL_FILE,
  UPDATE_FAIL_HTTP_ERROR,
  UPDATE_FAIL_SERVER,
  UPDATE_REFUSED_EXPIRED,
  UPDATE_REFUSED_HARDWARE,
  UPDATE_REFUSED_ROLLBACK,
  UPDATE_REFUSED_UNSIGNED,
  UPDATE_SUCCESS,
} from "../srup/mod.ts";
import type { Retryable } from "../policies/mod.ts";
import type { DeviceState } from "./states.ts";

/** When a device may try again: total attempts and the conditions worth a retry. */
export interface RetryRule {
  attempts: number;
  on: readonly Retryable[];
}

/**
 * What a device actor remembers. Deliberately tiny: each `assign` clones the actor's snapshot, so
 * the engine keeps the rest (last status, deadline) in its own per-device records.
 */
export interface DeviceContext {
  id: string;
  /** Hex of the current token; empty before the first INITIATE. */
  token: string;
  /** INITIATE attempts so far. */
  attempt: number;
  /** ACTIVATE sends for the current token, the first included. */
  activations: number;
  retry: RetryRule;
}

/** Input of a device actor. */
export interface DeviceInput {
  id: string;
  retry: RetryRule;
}

/** Events a device actor accepts. */
export type DeviceEvent =
  | { type: "device.initiate"; token: Uint8Array }
  | { type: "device.response"; status: number }
  | { type: "device.activate" }
  | { type: "device.timeout" }
  | { type: "device.cancel" };

const TRANSIENT: ReadonlyMap<number, Retryable> = new Map([
  [UPDATE_FAIL_HTTP_ERROR, "fc"],
  [UPDATE_FAIL_SERVER, "fd"],
  [UPDATE_FAIL_FILE, "fe"],
  // [SRUP-8] An INITIATE that arrived too late is a delivery that took too long: retried as a
  // timeout is, and each retry is a fresh INITIATE with a fresh not-after time.
  [UPDATE_REFUSED_EXPIRED, "timeout"],
]);

/**
 * [SRUP-7] A device's refusal of the release itself (unsigned, a downgrade, other hardware): not
 * retried, since the same release would be refused again; the device fails and counts toward the
 * failure threshold, but the rollout does not halt as on 0xFF (the file was never fetched).
 */
const REFUSED: ReadonlySet<number> = new Set([
  UPDATE_REFUSED_UNSIGNED,
  UPDATE_REFUSED_ROLLBACK,
  UPDATE_REFUSED_HARDWARE,
]);

/** The retry condition an event stands for, if any. */
function retryKey(event: DeviceEvent): Retryable | undefined {
  if (event.type === "device.timeout") return "timeout";
  return event.type === "device.response" ? TRANSIENT.get(event.status) : undefined;
}

function report(state: DeviceState) {
  return { type: "report", params: { state } } as const;
}

/** The device machine; the engine provides `sendInitiate`, `sendActivate` and `report`. */
export const deviceMachine = setup({
  types: {
    context: {} as DeviceContext,
    events: {} as DeviceEvent,
    input: {} as DeviceInput,
  },
  actions: {
    sendInitiate: () => {},
    sendActivate: () => {},
    /** Tells the engine a state was entered: the engine records it, emits the event, arms timers. */
    report: (_args, _params: { state: DeviceState }) => {},
    newToken: assign({
      token: ({ event }) => event.type === "device.initiate" ? toHex(event.token) : "",
      attempt: ({ context }) => context.attempt + 1,
    }),
    countActivation: assign({ activations: ({ context }) => context.activations + 1 }),
  },
  guards: {
    /** Whether to ACTIVATE right after the 0x00; the engine provides it (immediate activation). */
    activateNow: () => false,
    /** Whether one frame and its RESPONSE settle a device (rollback, rotate-key); the engine provides it. */
    single: () => false,
    status: ({ event }, params: { is: number }) =>
      event.type === "device.response" && event.status === params.is,
    transient: ({ event }) => event.type === "device.response" && TRANSIENT.has(event.status),
    refused: ({ event }) => event.type === "device.response" && REFUSED.has(event.status),
    /**
     * A missing activation confirmation is retried with the same token, never with a new
     * INITIATE: the device may have switched already and only its 0x10 was lost.
     */
    activateAgain: ({ context }) =>
      context.activations < context.retry.attempts && context.retry.on.includes("timeout"),
    retryable: ({ context, event }) => {
      const key = retryKey(event);
      return key !== undefined && context.attempt < context.retry.attempts &&
        context.retry.on.includes(key);
    },
  },
}).createMachine({
  id: "device",
  context: ({ input }) => ({
    id: input.id,
    token: "",
    attempt: 0,
    activations: 1,
    retry: input.retry,
  }),
  initial: "idle",
  on: {
    // [SRUP-3] A digest mismatch is fatal whenever it arrives: the file is not what we signed.
    "device.response": {
      guard: { type: "status", params: { is: UPDATE_FAIL_DIGEST } },
      target: ".failed",
    },
    "device.cancel": ".cancelled",
  },
  states: {
    idle: {
      on: { "device.initiate": { target: "initiated", actions: "newToken" } },
    },
    initiated: {
      entry: [report("initiated"), "sendInitiate"],
      on: {
        "device.response": [
          // [SRUP-9] [SRUP-10] A ROLLBACK's or KEY_ROTATE's one answer: 0x10, or a refusal no
          // retry changes (0x1E, 0x1F, 0xFA).
          {
            guard: and(["single", { type: "status", params: { is: ACTIVATE_SUCCESS } }]),
            target: "activated",
          },
          { guard: "single", target: "failed" },
          {
            guard: { type: "status", params: { is: UPDATE_SUCCESS } },
            target: "received",
          },
          { guard: "retryable", target: "retrying" },
          { guard: "transient", target: "failed" },
          { guard: "refused", target: "failed" },
        ],
        "device.timeout": "timed_out",
      },
    },
    received: {
      entry: report("received"),
      always: { guard: "activateNow", target: "activating" },
      on: { "device.activate": "activating" },
    },
    activating: {
      entry: [report("activating"), "sendActivate"],
      on: {
        "device.response": [
          {
            guard: { type: "status", params: { is: ACTIVATE_SUCCESS } },
            target: "activated",
          },
          {
            guard: { type: "status", params: { is: ACTIVATE_FAIL } },
            target: "failed",
          },
        ],
        "device.timeout": [
          {
            guard: "activateAgain",
            target: "activating",
            reenter: true,
            actions: [report("timed_out"), "countActivation"],
          },
          { target: "failed", actions: report("timed_out") },
        ],
      },
    },
    timed_out: {
      entry: report("timed_out"),
      always: [{ guard: "retryable", target: "retrying" }, { target: "failed" }],
    },
    retrying: {
      entry: report("retrying"),
      on: { "device.initiate": { target: "initiated", actions: "newToken" } },
    },
    activated: { type: "final", entry: report("activated") },
    failed: { type: "final", entry: report("failed") },
    cancelled: { type: "final", entry: report("cancelled") },
  },
});
