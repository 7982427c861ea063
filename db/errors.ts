/** Storage errors callers catch: bad data (a 4xx for the API) as opposed to infrastructure trouble. */

/** Options for the storage error classes. */
export interface StorageErrorOptions extends ErrorOptions {
  /** The violated constraint or index, when the database named one. */
  constraint?: string;
}

/** A write collides with existing data, such as a duplicate id; the API answers 409. */
export class ConflictError extends Error {
  /** The violated constraint or index, when known. */
  readonly constraint?: string;

  constructor(message: string, options: StorageErrorOptions = {}) {
    super(message, options);
    this.name = "ConflictError";
    this.constraint = options.constraint;
  }
}

/** The database refused a value: a bad id, a failed check, a missing reference; the API answers 4xx. */
export class InvalidDataError extends Error {
  /** The violated constraint, when known. */
  readonly constraint?: string;

  constructor(message: string, options: StorageErrorOptions = {}) {
    super(message, options);
    this.name = "InvalidDataError";
    this.constraint = options.constraint;
  }
}

interface PgErrorFields {
  code: string;
  message: string;
  detail?: string;
  constraint?: string;
  constraint_name?: string;
}

/** The PostgreSQL error under drizzle's DrizzleQueryError, from either driver. */
function pgError(error: unknown): PgErrorFields | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) {
      return e as unknown as PgErrorFields;
    }
  }
  return undefined;
}

/** The SQLSTATE of a database error, looking through drizzle's wrapper; undefined for others. */
export function sqlState(error: unknown): string | undefined {
  return pgError(error)?.code;
}

/**
 * Turns a database error about bad data into a {@linkcode ConflictError} or
 * {@linkcode InvalidDataError} whose message starts with `context`; returns any other error as is.
 */
export function classifyError(error: unknown, context: string): unknown {
  const pg = pgError(error);
  if (!pg) return error;
  const detail = (pg.detail ?? pg.message).replace(/\.$/, "");
  const options = { cause: error, constraint: pg.constraint ?? pg.constraint_name };
  // Class 23 is integrity constraint violation, class 22 data exception.
  if (pg.code === "23505" || pg.code === "23P01") {
    return new ConflictError(`${context}: ${detail}`, options);
  }
  if (pg.code.startsWith("23") || pg.code.startsWith("22")) {
    return new InvalidDataError(`${context}: ${detail}`, options);
  }
  return error;
}

/** Awaits `work`, classifying a bad-data database error with {@linkcode classifyError}. */
export async function guard<T>(work: PromiseLike<T>, context: string): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw classifyError(error, context);
  }
}

// SQLSTATE classes of a database that cannot work now, not of a wrong write: 08 connection,
// 53 insufficient resources (disk full), 57 operator intervention (shutdown, statement timeout),
// 58 system error (I/O), 40 transaction rollback (serialization failure, deadlock).
const UNAVAILABLE_CLASSES = new Set(["08", "53", "57", "58", "40"]);
// Node-style network error codes and the postgres driver's own connection codes.
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  // idle_in_transaction_session_timeout ended the session (a node frozen mid-commit): retried.
  "25P03",
]);

/**
 * Whether `error` says the database cannot be reached or cannot write now (down, restarting, disk
 * full), so the same work may succeed later; false for a write that is wrong in itself.
 */
export function isUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") {
      if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.ConnectionReset) {
        return true;
      }
      continue;
    }
    if (UNAVAILABLE_CODES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code)) return UNAVAILABLE_CLASSES.has(code.slice(0, 2));
  }
  return false;
}

/**
 * The database's own words for a failure in one line, with its SQLSTATE when there is one; never
 * drizzle's wrapper, which repeats the whole SQL and its parameters.
 */
export function describeDatabaseError(error: unknown): string {
  let e = error;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  const message = (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 300);
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !message.includes(code)
    ? `${message} (SQLSTATE ${code})`
    : message;
}
