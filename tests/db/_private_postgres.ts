/**
 * A private PostgreSQL server on its own port and data dir, for tests that stop and restart the
 * database. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
 */
import { chown } from "node:fs/promises";
import { join } from "node:path";
import { createServer } from "node:net";

/** Why a private server cannot run here, or undefined when it can. */
export const PRIVATE_POSTGRES_UNAVAILABLE: string | undefined = await findUnavailable();

const BIN = await findBin();

async function findBin(): Promise<string | undefined> {
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) {
      const bin = join("/usr/lib/postgresql", entry.name, "bin");
      if (await exists(join(bin, "pg_ctl"))) return bin;
    }
  } catch {
    // No PostgreSQL installed.
  }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function findUnavailable(): Promise<string | undefined> {
  if (!await findBin()) return "no PostgreSQL binaries under /usr/lib/postgresql";
  if (Deno.uid() === 0) {
    try {
      const status = await new Deno.Command("id", { args: ["-u", "postgres"], stdout: "null" })
        .output();
      if (!status.success) return "running as root and there is no postgres user to run as";
    } catch {
      return "cannot look up the postgres user";
    }
  }
  return undefined;
}

/** The postgres user's uid (`-u`) or gid (`-g`). */
async function idOf(flag: "-u" | "-g"): Promise<number> {
  const output = await new Deno.Command("id", { args: [flag, "postgres"] }).output();
  return Number(new TextDecoder().decode(output.stdout).trim());
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A running (or stopped) private server. */
export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  url: string;
  port: number;
  start(): Promise<void>;
  /** Stops it: "fast" closes sessions, "immediate" is a crash. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Stops it and removes its data dir. */
  destroy(): Promise<void>;
}

async function run(args: string[], env: Record<string, string> = {}): Promise<string> {
  const asRoot = Deno.uid() === 0;
  const command = asRoot
    ? new Deno.Command("runuser", { args: ["-u", "postgres", "--", ...args], env })
    : new Deno.Command(args[0]!, { args: args.slice(1), env });
  const output = await command.output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success) throw new Error(`${args.join(" ")} failed: ${text}`);
  return text;
}

/** Creates a data dir with trust authentication on a free port, and starts the server. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  if (PRIVATE_POSTGRES_UNAVAILABLE) throw new Error(PRIVATE_POSTGRES_UNAVAILABLE);
  const root = await Deno.makeTempDir({ prefix: "flotilla-pg-" });
  const data = join(root, "data");
  if (Deno.uid() === 0) {
    const [uid, gid] = [await idOf("-u"), await idOf("-g")];
    await chown(root, uid, gid);
  }
  await run([
    join(BIN!, "initdb"),
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=trust",
    "--no-sync",
    "-E",
    "UTF8",
  ]);
  const port = await freePort();
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${root} ` +
    `-c fsync=off -c full_page_writes=off`;
  const server: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await run([
        join(BIN!, "pg_ctl"),
        "-D",
        data,
        "-o",
        options,
        "-l",
        join(root, "log"),
        "-w",
        "start",
      ]);
    },
    async stop(mode = "fast") {
      await run([join(BIN!, "pg_ctl"), "-D", data, "-m", mode, "-w", "stop"]);
    },
    async destroy() {
      await server.stop("immediate").catch(() => {});
      await Deno.remove(root, { recursive: true });
    },
  };
  await server.start();
  return server;
}
