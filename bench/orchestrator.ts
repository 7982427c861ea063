/**
 * The orchestrator a benchmark measures: `main.ts serve` in its own process (so its CPU time and
 * peak RSS are its own), on PGlite in a temporary directory or on a fresh PostgreSQL database.
 */
import postgres from "postgres";
import { cpuMs, freePort, memory } from "./proc.ts";

/** Options of {@linkcode startOrchestrator}. */
export interface OrchestratorOptions {
  /** `--v8-flags` for the serve process; empty for V8's defaults. */
  v8Flags: string;
  /** A PostgreSQL server: a fresh database is created on it and dropped at stop. */
  databaseUrl?: string;
  /** An external broker (`MQTT_URL`); unset runs the embedded one on an ephemeral port. */
  mqttUrl?: string;
  /** Writes a V8 CPU profile of the serve process here when it exits (`--cpu-prof`). */
  cpuProfileDir?: string;
}

/** A running orchestrator. */
export interface BenchOrchestrator {
  url: string;
  token: string;
  pid: number;
  /** The database it uses: "pglite" or the fresh PostgreSQL database's name. */
  database: string;
  /** CPU time of the serve process, in ms. */
  cpuMs(): number;
  /** RSS of the serve process now and at its peak, in bytes. */
  memory(): { rss: number; peak: number };
  /** CPU time of the PostgreSQL backends serving its database, in ms, by backend pid. */
  databaseCpuMs(): Promise<Map<number, number>>;
  stop(): Promise<void>;
}

/** The `--v8-flags` value of deno.json's start task, so the benchmark runs what operators run. */
export function startTaskV8Flags(): string {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  const flag = (config.tasks.start as string).split(/\s+/).find((arg) =>
    arg.startsWith("--v8-flags=")
  );
  return flag?.slice("--v8-flags=".length) ?? "";
}

function passThrough(...names: string[]): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of names) {
    const value = Deno.env.get(name);
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

/** Starts `main.ts serve` and waits until its API answers. */
export async function startOrchestrator(options: OrchestratorOptions): Promise<BenchOrchestrator> {
  const dataDir = await Deno.makeTempDir({ prefix: "flotilla-bench-" });
  let database = "pglite";
  let admin: postgres.Sql | undefined;
  let databaseUrl: string | undefined;
  if (options.databaseUrl) {
    admin = postgres(options.databaseUrl, { max: 1, onnotice: () => {} });
    database = `flotilla_bench_${Date.now()}_${crypto.randomUUID().slice(0, 8)}`;
    await admin.unsafe(`create database ${database}`);
    const url = new URL(options.databaseUrl);
    url.pathname = `/${database}`;
    databaseUrl = url.href;
  }
  const token = `bench-${crypto.randomUUID()}`;
  const port = freePort();
  const env: Record<string, string> = {
    FLOTILLA_DATA_DIR: dataDir,
    FLOTILLA_ADMIN_TOKEN: token,
    PORT: String(port),
  };
  if (options.mqttUrl) env.MQTT_URL = options.mqttUrl;
  else env.FLOTILLA_MQTT_PORT = String(freePort());
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      ...(options.v8Flags ? [`--v8-flags=${options.v8Flags}`] : []),
      ...(options.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`] : []),
      new URL("../main.ts", import.meta.url).pathname,
      "serve",
    ],
    // Only what is named here: a DATABASE_URL or MQTT_URL of the bench's own shell is not used.
    clearEnv: true,
    env: { ...env, ...passThrough("PATH", "HOME", "DENO_DIR") },
    stdout: "null",
    // Kept, so a run that dies says why (bench/out/serve-<n>.log).
    stderr: "piped",
  });
  const child = command.spawn();
  await Deno.mkdir(new URL("./out/", import.meta.url), { recursive: true });
  const log = await Deno.open(new URL(`./out/serve-${port}.log`, import.meta.url), {
    write: true,
    create: true,
    truncate: true,
  });
  child.stderr.pipeTo(log.writable).catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      const response = await fetch(`${url}/v1/server`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > until) throw new Error("The orchestrator did not start within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    url,
    token,
    pid: child.pid,
    database,
    cpuMs: () => cpuMs(child.pid),
    memory: () => memory(child.pid),
    async databaseCpuMs() {
      const byPid = new Map<number, number>();
      if (!admin) return byPid;
      const rows = await admin<{ pid: number }[]>`
        select pid from pg_stat_activity where datname = ${database}`;
      for (const { pid } of rows) {
        try {
          byPid.set(pid, cpuMs(pid));
        } catch {
          // The backend ended between the query and the read.
        }
      }
      return byPid;
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone: its status and log say how.
      }
      const status = await child.status;
      if (status.code !== 0) {
        console.error(`orchestrator exited with ${status.code} (log: bench/out/serve-${port}.log)`);
      }
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      if (admin) {
        await admin.unsafe(`drop database if exists ${database} with (force)`).catch(() => {});
        await admin.end();
      }
    },
  };
}
