/** How `ctl` shows an answer to a person (`--json` prints the API's JSON instead). */

/** A column of a table: its heading and how a row shows in it. */
export type Column<T> = [heading: string, cell: (row: T) => unknown];

/** Rows as an aligned table under a heading line; a note when there is a next page. */
export function table<T>(
  rows: readonly T[],
  columns: readonly Column<T>[],
  nextCursor?: unknown,
): string {
  if (rows.length === 0) return "(none)";
  const cells = [
    columns.map(([heading]) => heading),
    ...rows.map((row) => columns.map(([, cell]) => text(cell(row)))),
  ];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  const lines = cells.map((line) =>
    line.map((cell, i) => i === line.length - 1 ? cell : cell.padEnd(widths[i]!)).join("  ")
      .trimEnd()
  );
  if (nextCursor !== null && nextCursor !== undefined) {
    lines.push(`(more: --cursor ${nextCursor})`);
  }
  return lines.join("\n");
}

/** An object as `key: value` lines, nested objects as dotted keys, empty values left out. */
export function record(value: unknown): string {
  const lines: string[] = [];
  const walk = (item: unknown, prefix: string) => {
    if (item !== null && typeof item === "object" && !Array.isArray(item)) {
      for (const [key, inner] of Object.entries(item)) {
        walk(inner, prefix ? `${prefix}.${key}` : key);
      }
    } else if (item !== null && item !== undefined && item !== "") {
      lines.push(`${prefix}: ${text(item)}`);
    }
  };
  walk(value, "");
  return lines.join("\n");
}

/** A cell's text: arrays and objects compactly, nothing for null. */
export function text(value: unknown): string {
  if (value === null || value === undefined) return "-";
  if (Array.isArray(value)) return value.map(text).join(",");
  if (typeof value === "object") {
    return Object.entries(value).map(([key, inner]) => `${key}=${text(inner)}`).join(",");
  }
  return String(value);
}

/** The first 12 characters of a digest, as `git` shortens hashes. */
export function short(digest: unknown): string {
  return typeof digest === "string" ? digest.slice(0, 12) : "-";
}
