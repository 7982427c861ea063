/** A uuid[] parameter the planner can see into. */
import { InvalidDataError } from "./errors.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The PostgreSQL array literal of `ids`, to bind as one text parameter cast to uuid[]. Unlike a
 * JSON record set, a bound array is a constant whose length the planner counts, so
 * `id = any(...)` becomes a primary-key lookup. Every id is checked, so none can end the literal.
 */
export function uuidArray(ids: readonly string[], context: string): string {
  for (const id of ids) {
    if (!UUID.test(id)) throw new InvalidDataError(`${context}: "${id}" is not a UUID`);
  }
  return `{${ids.join(",")}}`;
}
