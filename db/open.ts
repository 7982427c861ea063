/** Opens the database, PGlite embedded or PostgreSQL by URL, and applies the migrations. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import * as schema from "./schema.ts";

/** The drizzle database (or a transaction on it) every repository function takes. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

/** Options for {@linkcode openDatabase}. */
export interface OpenDatabaseOptions {
  /** A `postgres://` URL; when absent the embedded PGlite is used. */
  url?: string;
  /** Where PGlite keeps its files (in a `pglite` folder); the service passes FLOTILLA_DATA_DIR. */
  dataDir?: string;
  /** Keep PGlite in memory only, for tests. */
  memory?: boolean;
  /** Connections in the PostgreSQL pool. */
  maxConnections?: number;
  /**
   * PostgreSQL ends a session whose transaction sits idle this long, releasing its locks: a
   * cluster node frozen mid-commit then holds no rollout row past its lease. Default: none.
   */
  idleInTransactionMs?: number;
  /** PostgreSQL's application_name for the connections, as pg_stat_activity shows them. */
  applicationName?: string;
}

/** An open database with its migrations applied. */
export interface Database {
  readonly db: Db;
  readonly kind: "pglite" | "postgres";
  /** Where the data is: the PGlite folder, "memory", or the URL without its password. */
  readonly location: string;
  close(): Promise<void>;
}

// Any constant (not the rollout-creation one): the key of the lock that serializes migrations.
const MIGRATE_LOCK = 0x666c6d67;

const MIGRATIONS = fileURLToPath(new URL("./migrations", import.meta.url));

/** Opens PGlite under `dataDir` (default `./data`) or PostgreSQL at `url`, then migrates. */
export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<Database> {
  if (options.url !== undefined) return await openPostgres(options.url, options);
  const location = options.memory ? "memory" : join(options.dataDir ?? "./data", "pglite");
  let client: PGlite;
  let lock: Deno.FsFile | undefined;
  try {
    if (!options.memory) {
      await Deno.mkdir(location, { recursive: true });
      lock = await lockDataDir(location);
    }
    client = await PGlite.create(options.memory ? undefined : location);
  } catch (error) {
    lock?.close();
    throw new Error(`Cannot open database "${location}": ${messageOf(error)}`, { cause: error });
  }
  const release = async () => {
    await client.close();
    lock?.close();
  };
  const db = drizzlePglite({ client, schema, casing: "snake_case" });
  try {
    await migratePglite(db, { migrationsFolder: MIGRATIONS });
  } catch (error) {
    await release();
    throw new Error(`Cannot migrate database "${location}": ${messageOf(error)}`, { cause: error });
  }
  return { db: db as unknown as Db, kind: "pglite", location, close: release };
}

// A lock held by a live process is granted only when it exits; this long means it is held.
const LOCK_WAIT_MS = 1_000;

/**
 * Locks a PGlite folder for this process: two processes writing one folder corrupt it. The lock
 * is the kernel's (flock), so a process that dies releases it.
 */
async function lockDataDir(location: string): Promise<Deno.FsFile> {
  const file = await Deno.open(`${location}.lock`, { create: true, write: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const held = await Promise.race([
    file.lock(true).then(() => false),
    new Promise<true>((resolve) => timer = setTimeout(() => resolve(true), LOCK_WAIT_MS)),
  ]);
  clearTimeout(timer);
  if (held) {
    // The lock request stays pending with its file: this process is about to give up anyway.
    throw new Error(
      "another process has it open (a running flotilla serve?): stop it first, or use the API",
    );
  }
  return file;
}

async function openPostgres(url: string, options: OpenDatabaseOptions): Promise<Database> {
  const location = redact(url);
  const client = postgres(url, {
    max: options.maxConnections ?? 10,
    // Seconds; an unreachable server is reported within this, not after the driver's default 30.
    connect_timeout: 5,
    // Migrations re-run "create schema if not exists" and the like; those notices are noise.
    onnotice: () => {},
    connection: {
      ...(options.applicationName === undefined
        ? {}
        : { application_name: options.applicationName }),
      ...(options.idleInTransactionMs === undefined ? {} : {
        idle_in_transaction_session_timeout: Math.round(options.idleInTransactionMs),
      }),
    },
  });
  const db = drizzlePostgres({ client, schema, casing: "snake_case" });
  try {
    // Cluster nodes starting together migrate one at a time: a session lock on one connection.
    const session = await client.reserve();
    try {
      await session`select pg_advisory_lock(${MIGRATE_LOCK})`;
      try {
        await migratePostgres(db, { migrationsFolder: MIGRATIONS });
      } finally {
        await session`select pg_advisory_unlock(${MIGRATE_LOCK})`;
      }
    } finally {
      session.release();
    }
  } catch (error) {
    await client.end({ timeout: 1 });
    throw new Error(`Cannot open database "${location}": ${messageOf(error)}`, { cause: error });
  }
  return {
    db: db as unknown as Db,
    kind: "postgres",
    location,
    close: () => client.end({ timeout: 5 }),
  };
}

/** The URL without its password, for messages and logs. */
function redact(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The URL may hold a password, so it is not repeated here.
    throw new TypeError("Cannot open database: the database URL is not a valid URL");
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new TypeError(
      `Cannot open database: URL scheme "${parsed.protocol}" is not "postgres:" or "postgresql:"`,
    );
  }
  if (parsed.password) parsed.password = "***";
  return parsed.href;
}

function messageOf(error: unknown): string {
  // drizzle wraps driver errors in "Failed query: <sql>"; the driver's own message says more.
  let e = error;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
