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
