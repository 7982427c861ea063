/** flotilla: the CLI entry. Each command's module is loaded only when that command runs. */
import { UsageError } from "./cli/args.ts";

/** A CLI command: runs with its arguments and returns the exit code. */
interface Command {
  summary: string;
  load(): Promise<{ run(args: string[]): Promise<number> }>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: "Run the orchestrator (HTTP API, MQTT, database)",
    load: () => import("./cli/serve.ts"),
  },
  device: {
    summary: "Provision, run and inspect the device agent",
    load: () => import("./cli/device.ts"),
  },
  sim: {
    summary: "Simulate a rollout over many virtual devices",
    load: () => import("./cli/sim.ts"),
  },
  srup: {
    summary: "Decode SRUP frames and make Ed25519 keys",
    load: () => import("./cli/srup.ts"),
  },
  policy: { summary: "Check rollout policy files", load: () => import("./cli/policy.ts") },
  ctl: { summary: "Drive a running orchestrator's API", load: () => import("./cli/ctl.ts") },
  "admin-token": {
    summary: "Mint an admin token in the database, without the API",
    load: () => import("./cli/admin_token.ts"),
  },
};

const HELP = `flotilla: staged SRUP update rollouts for IoT fleets

Usage: deno task <command> [options]    (or: deno run -A main.ts <command> [options])

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(11)} ${c.summary}`).join("\n")}

Run "<command> --help" for a command's options.`;

/**
 * Runs the CLI; returns the exit code. This is the one place errors become exit codes: a usage
 * error is one line and exit 2, any other error one line (its message, never a stack) and exit 1.
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(HELP);
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    console.error(`Unknown command "${name}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await (await command.load()).run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${name}: ${error.message}`);
      return 2;
    }
    console.error(describeError(error));
    return 1;
  }
}

/** An error as one line: its message (or its value), no stack; `cause` when it adds something. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error).split("\n")[0]!;
  let text = error.message || error.name;
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  if (cause && !text.includes(cause)) text += `: ${cause}`;
  return text.split("\n").map((line) => line.trim()).filter(Boolean).join("; ");
}

if (import.meta.main) {
  // An error escaping a command's promise chain (a client's event handler, say) is one line too.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    console.error(describeError(event.reason));
    Deno.exit(1);
  });
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    console.error(describeError(event.error));
    Deno.exit(1);
  });
  Deno.exit(await main(Deno.args));
}
