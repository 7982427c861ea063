/** `flotilla ctl`: drive a running orchestrator's API from a terminal, through the typed client. */
import { apiTarget } from "./api.ts";
import { parse, printJson, UsageError } from "./args.ts";
import { COMMANDS, type CtlCommand } from "./ctl_commands.ts";
import { record } from "./ctl_format.ts";

const DEFAULT_API = "http://127.0.0.1:8080";

export const HELP = `Usage: flotilla ctl [--api URL] [--token T] <command> [options] [--json]

The API defaults to $FLOTILLA_API or ${DEFAULT_API}; the token to $FLOTILLA_TOKEN.
Answers show as text; --json prints the API's JSON instead (one line per answer or event).
Tags are key=value everywhere. "ctl <command> --help" shows one command.

${
  COMMANDS.map((c) => `  ${c.name}${c.usage ? ` ${c.usage}` : ""}\n      ${c.summary}`).join("\n")
}`;

/** Runs `ctl`; returns the exit code. Errors are thrown for main.ts to print as one line. */
export async function run(args: string[]): Promise<number> {
  // Options before the command are ctl's own; the rest belong to the command.
  const split = firstPositional(args);
  const head = parse(args.slice(0, split), {
    api: { type: "string" },
    token: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }).values;
  const rest = args.slice(split);
  if (rest.length === 0) {
    console.log(HELP);
    return head.help ? 0 : 2;
  }
  const command = find(rest);
  if (!command) throw new UsageError(`unknown command "${rest.join(" ")}": see ctl --help`);
  const words = command.name.split(" ").length;
  const parsed = parse(
    rest.slice(words),
    { ...command.options, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    true,
  );
  if (head.help || parsed.values.help) {
    console.log(`Usage: flotilla ctl ${command.name} ${command.usage}\n  ${command.summary}`);
    return 0;
  }
  const expected = command.positionals ?? [];
  if (parsed.positionals.length !== expected.length) {
    throw new UsageError(
      `${command.name} takes ${expected.length ? expected.join(" ") : "no arguments"}: got ${
        parsed.positionals.length ? `"${parsed.positionals.join(" ")}"` : "none"
      }`,
    );
  }
  const token = head.token ?? Deno.env.get("FLOTILLA_TOKEN") ?? "";
  if (!token) throw new UsageError("ctl needs a token: --token T or FLOTILLA_TOKEN");
  const api = head.api !== undefined
    ? apiTarget(head.api, token, "--api")
    : apiTarget(Deno.env.get("FLOTILLA_API") || DEFAULT_API, token, "FLOTILLA_API");
  const json = Boolean(head.json || parsed.values.json);
  const result = await command.run(api, {
    values: parsed.values as Record<string, string | boolean | string[] | undefined>,
    positionals: parsed.positionals,
    json,
  });
  if (result !== undefined) {
    if (json) printJson(result);
    else console.log((command.show ?? record)(result));
  }
  return 0;
}

/** The command the leading words of `args` name, the longest match first (`rollout create`). */
function find(args: string[]): CtlCommand | undefined {
  const two = `${args[0]} ${args[1] ?? ""}`.trim();
  return COMMANDS.find((c) => c.name === two) ?? COMMANDS.find((c) => c.name === args[0]);
}

function firstPositional(args: string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--api" || arg === "--token") {
      i++;
      continue;
    }
    if (!arg.startsWith("-")) return i;
  }
  return args.length;
}
