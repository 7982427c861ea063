/** One-line structured logs: an event name and fields, injected wherever something is logged. */

/** Fields of a log line. */
export type LogFields = Record<string, unknown>;

/** Where log lines go. */
export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** A logger that writes each event as one JSON line through `write` (stderr by default). */
export function jsonLogger(write: (line: string) => void = console.error): Logger {
  function emit(level: string, event: string, fields: LogFields = {}): void {
    const line = { time: new Date().toISOString(), level, event, ...fields };
    write(JSON.stringify(line, (_key, v) => typeof v === "bigint" ? v.toString() : v));
  }
  return {
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
  };
}

/** A logger that drops everything, for tests and large simulations. */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
};
