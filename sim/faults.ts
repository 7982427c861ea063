/** Fault injection for virtual devices: how often each failure happens, and how long answers take. */
import { parseDuration } from "../policies/mod.ts";
import {
  ACTIVATE_SUCCESS,
  UPDATE_FAIL_DIGEST,
  UPDATE_FAIL_FILE,
  UPDATE_FAIL_HTTP_ERROR,
  UPDATE_FAIL_SERVER,
  UPDATE_SUCCESS,
} from "../srup/mod.ts";

/** Probability of each fault per INITIATE; `timeout` (no answer) applies to ACTIVATE too. */
export interface FaultMix {
  fc: number;
  fd: number;
  fe: number;
  ff: number;
  timeout: number;
}

/** Bounds of a virtual device's answer delay, in milliseconds. */
export interface LatencyRange {
  min: number;
  max: number;
}

/** No faults at all. */
export const NO_FAULTS: Readonly<FaultMix> = Object.freeze({
  fc: 0,
  fd: 0,
  fe: 0,
  ff: 0,
  timeout: 0,
});

/** Parses `fc=0.01,fd=0.02,timeout=0.01`; throws RangeError for an unknown key or a bad value. */
export function parseFaults(text: string): FaultMix {
  const mix: FaultMix = { ...NO_FAULTS };
  for (const part of text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const [key, value, extra] = part.split("=");
    if (key === undefined || value === undefined || extra !== undefined || !(key in mix)) {
      throw new RangeError(
        `Invalid fault "${part}": use key=probability with keys fc, fd, fe, ff, timeout`,
      );
    }
    const probability = Number(value);
    if (value.trim() === "" || !(probability >= 0 && probability <= 1)) {
      throw new RangeError(`Invalid fault "${part}": probability must be between 0 and 1`);
    }
    mix[key as keyof FaultMix] = probability;
  }
  const total = mix.fc + mix.fd + mix.fe + mix.ff + mix.timeout;
  if (total > 1 + 1e-9) {
    throw new RangeError(`Invalid faults "${text}": probabilities sum to ${total}`);
  }
  return mix;
}

/** Parses `200ms..5s` (or one duration for a fixed delay). */
export function parseLatency(text: string): LatencyRange {
  const parts = text.split("..");
  if (parts.length > 2) {
    throw new RangeError(`Invalid latency "${text}": use MIN..MAX, as 200ms..5s`);
  }
  const min = parseDuration(parts[0]!.trim());
  const max = parseDuration((parts[1] ?? parts[0]!).trim());
  if (max < min) {
    throw new RangeError(`Invalid latency "${text}": the maximum is below the minimum`);
  }
  return { min, max };
}

/** The status a virtual device answers an INITIATE with, or null for no answer. */
export function initiateOutcome(mix: FaultMix, draw: number): number | null {
  let edge = mix.ff;
  if (draw < edge) return UPDATE_FAIL_DIGEST;
  if (draw < (edge += mix.fc)) return UPDATE_FAIL_HTTP_ERROR;
  if (draw < (edge += mix.fd)) return UPDATE_FAIL_SERVER;
  if (draw < (edge += mix.fe)) return UPDATE_FAIL_FILE;
  if (draw < edge + mix.timeout) return null;
  return UPDATE_SUCCESS;
}

/** The status a virtual device answers an ACTIVATE with, or null for no answer. */
export function activateOutcome(mix: FaultMix, draw: number): number | null {
  return draw < mix.timeout ? null : ACTIVATE_SUCCESS;
}

/** A delay within `range`, whole milliseconds. */
export function latency(range: LatencyRange, draw: number): number {
  return range.min + Math.floor(draw * (range.max - range.min + 1));
}
