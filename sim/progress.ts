/** The live simulation's progress: one redrawn terminal block, or JSON lines for machines. */
import { DEVICE_STATES, FINAL_DEVICE_STATES } from "../actors/mod.ts";
import type { LiveSample } from "./live_summary.ts";

const STATES = DEVICE_STATES;
const BAR = 30;
// A terminal is redrawn at most this often; polls in between are skipped.
const REDRAW_MS = 250;

/** Progress figures of one sample. */
export interface ProgressFigures {
  done: number;
  devicesPerSecond: number;
  /** Estimated milliseconds left, or null before anything finished. */
  etaMs: number | null;
}

/** Finished devices, rate and ETA of a sample out of `devices`. */
export function progressFigures(sample: LiveSample, devices: number): ProgressFigures {
  const done = FINAL_DEVICE_STATES.reduce((sum, state) => sum + (sample.counts[state] ?? 0), 0);
  const rate = sample.t > 0 ? done / (sample.t / 1000) : 0;
  return {
    done,
    devicesPerSecond: Math.round(rate * 10) / 10,
    etaMs: rate > 0 ? Math.round(((devices - done) / rate) * 1000) : null,
  };
}

/** The progress block: stage, bar, counts per state, devices per second, elapsed and ETA. */
export function formatProgress(
  sample: LiveSample,
  info: { devices: number; stages: number },
): string {
  const figures = progressFigures(sample, info.devices);
  const share = info.devices ? figures.done / info.devices : 0;
  const filled = Math.round(share * BAR);
  const counts = STATES.filter((s) => sample.counts[s]).map((s) => `${s} ${sample.counts[s]}`);
  return [
    `${sample.state}  stage ${sample.stage + 1}/${info.stages}  ` +
    `[${"#".repeat(filled)}${".".repeat(BAR - filled)}] ${(share * 100).toFixed(1)}%  ` +
    `${figures.done}/${info.devices}`,
    `${counts.join("  ") || "no devices yet"}`,
    `${figures.devicesPerSecond} devices/s  elapsed ${clock(sample.t)}  ` +
    `eta ${figures.etaMs === null ? "--" : clock(figures.etaMs)}`,
  ].join("\n");
}

/** Draws progress in place on a terminal, at most a few times a second. */
export class TerminalProgress {
  readonly #write: (text: string) => void;
  #lines = 0;
  #last = 0;

  constructor(write: (text: string) => void) {
    this.#write = write;
  }

  /** Redraws with `sample`, unless the last redraw was under 250 ms ago and `force` is unset. */
  draw(sample: LiveSample, info: { devices: number; stages: number }, force = false): void {
    const now = performance.now();
    if (!force && now - this.#last < REDRAW_MS) return;
    this.#last = now;
    const text = formatProgress(sample, info);
    // Up to the first line drawn last time, then clear to the end of the screen.
    const up = this.#lines > 0 ? `\x1b[${this.#lines - 1}F\r` : "";
    this.#write(`${up}\x1b[J${text}`);
    this.#lines = text.split("\n").length;
  }

  /** Ends the block with a newline so later output starts below it. */
  finish(): void {
    if (this.#lines > 0) this.#write("\n");
    this.#lines = 0;
  }
}

/** One JSON progress line, for `--json`. */
export function progressJson(sample: LiveSample, info: { devices: number; stages: number }) {
  const figures = progressFigures(sample, info.devices);
  return {
    type: "progress",
    elapsedMs: sample.t,
    state: sample.state,
    stage: sample.stage,
    stages: info.stages,
    devices: info.devices,
    counts: sample.counts,
    ...figures,
  };
}

function clock(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
