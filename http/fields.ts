/**
 * The fields several routes share, each written so /openapi.json states exactly what the server
 * accepts: patterns in the one regular-expression dialect JavaScript and JSON Schema tools share
 * (no flags, no `\p{...}`), integers with their bounds, enums listing every word.
 */
import { z } from "@hono/zod-openapi";
import { ROW_STATES } from "../actors/mod.ts";

// deno-lint-ignore no-control-regex -- control characters are what this excludes
const PLAIN = /^[^\x00-\x1f\x7f-\x9f]*$/;
// deno-lint-ignore no-control-regex -- as PLAIN, but tab, line feed and carriage return are prose
const PROSE = /^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$/;

/** One line of text up to `max` characters, without control characters (PostgreSQL refuses NUL). */
export function plainText(field: string, max: number) {
  return z.string().max(max).regex(PLAIN, `${field} must not contain control characters`);
}

/** Free text up to `max` characters: line breaks and tabs, but no other control character. */
export function prose(field: string, max: number) {
  return z.string().max(max).regex(
    PROSE,
    `${field} must not contain control characters other than line breaks and tabs`,
  );
}

/** A SHA-256 digest in hex, either case; lowercase once parsed. */
export const Digest = z.string()
  .regex(/^[0-9a-fA-F]{64}$/, "digest must be 64 hex characters (SHA-256)")
  .transform((text) => text.toLowerCase());

/** A tag key: 1 to 64 of A-Z a-z 0-9 _ . - / (never `=` or `:`, which split a filter). */
const TAG_KEY = "[A-Za-z0-9_.\\-/]{1,64}";
/** A tag value: up to 256 characters, no control characters. */
const TAG_VALUE = "[^\\x00-\\x1f\\x7f-\\x9f]{0,256}";

/** Tags: up to 32 keys, each with a value. */
export const Tags = z.record(
  z.string().regex(new RegExp(`^${TAG_KEY}$`), "tag keys are 1 to 64 of A-Z a-z 0-9 _ . - /"),
  z.string().regex(
    new RegExp(`^${TAG_VALUE}$`),
    "tag values are up to 256 characters, without control characters",
  ),
).refine((tags) => Object.keys(tags).length <= 32, "at most 32 tags").openapi({
  maxProperties: 32,
  // JSON Schema 2020-12, which the metadata's OpenAPI 3.0 type does not know.
  ...{ propertyNames: { pattern: `^${TAG_KEY}$` } },
} as Record<string, unknown>);

/** A `tag` query filter: `key=value` (`key:value` is also read). */
export const TagFilter = z.string().regex(
  new RegExp(`^${TAG_KEY}[=:]${TAG_VALUE}$`),
  "tag filters are key=value (key:value is also read): a key of 1 to 64 of A-Z a-z 0-9 _ . - /, and a value without control characters",
);

/** A device state, as a filter; an unknown word is refused with the list of states. */
export const StateFilter = z.enum(ROW_STATES);

/** A whole number from `min` to `max` in a query parameter, written in decimal digits. */
export function queryInt(field: string, min: number, max: number) {
  return z.string()
    .regex(/^-?\d{1,20}$/, `${field} must be a whole number`)
    .transform(Number)
    .pipe(
      z.number().int().min(min, `${field} must be ${min} or more`).max(
        max,
        `${field} must be ${max} or less`,
      ),
    )
    .openapi({ type: "integer", minimum: min, maximum: max });
}

/** The largest id of a PostgreSQL `integer` column, such as a device's position in a rollout. */
export const MAX_INT4 = 2 ** 31 - 1;

/** The largest integer a JSON number holds exactly, such as an event id. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
