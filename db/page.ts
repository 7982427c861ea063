/** Cursor pagination shared by the list functions. */

/** One page of a list. */
export interface Page<T, C = string> {
  items: T[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: C | null;
}

/** A page size: 1 to 1000, default 100. */
export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new RangeError(`Invalid page limit: ${limit} is not an integer from 1 to 1000`);
  }
  return limit;
}

/** The rows of a raw `execute()` result: postgres.js returns an array, PGlite `{ rows }`. */
export function rowsOf<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}
