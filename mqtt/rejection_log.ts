/** Rate-limited `frame.rejected` lines: a flood of bad frames is counted in full, logged in brief. */
import type { Clock } from "../io/clock.ts";
import type { LogFields, Logger } from "../obs/log.ts";
import type { RejectReason } from "./rejections.ts";

/** Options for {@linkcode RejectionLog}. */
export interface RejectionLogOptions {
  logger: Logger;
  clock: Clock;
  /** At most one `frame.rejected` line per reason this often; default 1 s. */
  lineEveryMs?: number;
  /** A `frame.rejected.summary` this long after the first line held back; default 10 s. */
  summaryAfterMs?: number;
}

// One line per reason per second keeps a sample of every kind of bad frame; a flood of 100,000
// frames a second otherwise writes ~20 MB of log a second.
const LINE_EVERY_MS = 1_000;
const SUMMARY_AFTER_MS = 10_000;

/**
 * Logs the first rejection of each reason, then at most one a `lineEveryMs` per reason; what it
 * holds back is summed up in one `frame.rejected.summary` line: "N frames rejected in the last Xs:
 * reason=count, ...", with the counts of every rejection in that period.
 */
export class RejectionLog {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #lineEveryMs: number;
  readonly #summaryAfterMs: number;
  readonly #lastLine = new Map<RejectReason, number>();
  /** Rejections by reason since `#since`, logged or not. */
  #counts = new Map<RejectReason, number>();
  #since: number | undefined;
  #held = 0;
  #timer: unknown;

  constructor(options: RejectionLogOptions) {
    this.#logger = options.logger;
    this.#clock = options.clock;
    this.#lineEveryMs = options.lineEveryMs ?? LINE_EVERY_MS;
    this.#summaryAfterMs = options.summaryAfterMs ?? SUMMARY_AFTER_MS;
  }

  /** Lines held back since the last summary. */
  get held(): number {
    return this.#held;
  }

  /** Logs one rejected frame, or holds its line back for the summary. */
  rejected(reason: RejectReason, fields: LogFields): void {
    const now = this.#clock.now();
    // A period with every line written needs no summary: an old one starts afresh.
    if (
      this.#held === 0 && this.#since !== undefined && now - this.#since >= this.#summaryAfterMs
    ) {
      this.#counts = new Map();
      this.#since = undefined;
    }
    this.#since ??= now;
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1);
    const last = this.#lastLine.get(reason);
    if (last === undefined || now - last >= this.#lineEveryMs) {
      this.#lastLine.set(reason, now);
      this.#logger.warn("frame.rejected", { reason, ...fields });
      return;
    }
    this.#held++;
    this.#timer ??= this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, this.#summaryAfterMs);
  }

  /** Writes the summary now if any line was held back, and starts a new period. */
  flush(): void {
    if (this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#held > 0) {
      const seconds = Math.max(1, Math.round((this.#clock.now() - this.#since!) / 1000));
      const total = [...this.#counts.values()].reduce((sum, n) => sum + n, 0);
      const sorted = [...this.#counts].sort((a, b) => b[1] - a[1]);
      const counts = sorted.map(([reason, n]) => `${reason}=${n}`).join(", ");
      this.#logger.warn("frame.rejected.summary", {
        message: `${total} frames rejected in the last ${seconds}s: ${counts}`,
        seconds,
        total,
        notLogged: this.#held,
        reasons: Object.fromEntries(sorted),
      });
    }
    this.#counts = new Map();
    this.#since = undefined;
    this.#held = 0;
  }
}
