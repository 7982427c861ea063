/** Shared helpers for the CLI commands. */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A usage error: printed as one line, with exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parses `args` with node:util's parseArgs, turning its errors into a UsageError. */
export function parse<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Writes a value to stdout as one JSON line. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, (_key, v) => typeof v === "bigint" ? v.toString() : v));
}

/** A command's subcommands: each runs with the remaining arguments and returns the exit code. */
export type Subcommands = Record<string, (args: string[]) => Promise<number>>;

/** Runs the subcommand `args[0]` names; prints `help` for none (exit 2) or `help` (exit 0). */
export async function dispatch(
  name: string,
  help: string,
  subcommands: Subcommands,
  args: string[],
): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    console.log(help);
    return command === undefined ? 2 : 0;
  }
  const run = Object.hasOwn(subcommands, command) ? subcommands[command] : undefined;
  if (!run) throw new UsageError(`Unknown ${name} command "${command}"`);
  return await run(rest);
}
