/** What every `ctl` command is, and the argument helpers they share. */
import type { ApiTarget } from "./api.ts";
import { UsageError } from "./args.ts";
import { type Column, table } from "./ctl_format.ts";

/** Parsed arguments of one command. */
export interface CtlInput {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** `--json`: print the API's JSON, one line per answer or event. */
  json: boolean;
}

/** One `ctl` command. */
export interface CtlCommand {
  /** The words that select it, e.g. `rollout create`. */
  name: string;
  /** Its arguments, as the help shows them. */
  usage: string;
  summary: string;
  options?: Record<string, { type: "string" | "boolean"; multiple?: boolean }>;
  /** Names of its positional arguments, all required. */
  positionals?: string[];
  /** Calls the API; returns the answer to print, or nothing when it printed as it went. */
  run(api: ApiTarget, input: CtlInput): Promise<unknown>;
  /** The answer for a person; without it the answer shows as `key: value` lines. */
  show?(answer: unknown): string;
}

export type Row = Record<string, unknown>;
export type Page = { items: Row[]; nextCursor: unknown };

export const PAGE = {
  limit: { type: "string" },
  cursor: { type: "string" },
} as const;

export function str(input: CtlInput, name: string): string | undefined {
  const value = input.values[name];
  return typeof value === "string" ? value : undefined;
}

export function need(input: CtlInput, name: string): string {
  const value = str(input, name);
  if (value === undefined || value === "") throw new UsageError(`Missing --${name}`);
  return value;
}

/** `--tag key=value` options, the one tag syntax of the CLI and the API. */
export function tags(input: CtlInput): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const pair of (input.values.tag as string[] | undefined) ?? []) {
    const at = pair.indexOf("=");
    if (at < 1) throw new UsageError(`Invalid --tag "${pair}": expected key=value`);
    pairs[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return pairs;
}

export function showPage(columns: Column<Row>[]) {
  return (value: unknown) => {
    const page = value as Page;
    return table(page.items, columns, page.nextCursor);
  };
}
