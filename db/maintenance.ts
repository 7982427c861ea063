/**
 * Routine upkeep that PGlite lacks: it runs no autovacuum, so without this the rows the engine
 * rewrites would keep every dead version and the planner would keep the statistics of an empty
 * table (and scan 100,000 rows to update 300). PostgreSQL's own autovacuum does this there.
 */
import { sql } from "drizzle-orm";
import type { Database } from "./open.ts";
import { rowsOf } from "./page.ts";
import { describeDatabaseError } from "./errors.ts";

/** Options for {@linkcode Maintenance}. */
export interface MaintenanceOptions {
  /** How often to look at the tables' counters; default 2 s, so statistics follow a bulk load quickly. */
  intervalMs?: number;
  /** Told of each table vacuumed or analyzed, and of failures. */
  log?: (line: string) => void;
}

/** What one pass did. */
export interface MaintenanceRun {
  vacuumed: string[];
  analyzed: string[];
}

// Vacuum by autovacuum's default rule: once dead rows exceed a base count plus a share of the live.
const VACUUM_BASE = 50;
const VACUUM_SCALE = 0.2;
// Analyze once the row count has doubled or halved since the statistics were taken (and when there
// are none). Autovacuum's rule (10% of rows changed) would re-analyze the engine's update-heavy
// tables every pass; their sizes, which is what the planner needs, do not change.
const ANALYZE_BASE = 50;
const ANALYZE_FACTOR = 2;

interface TableCounters {
  name: string;
  live: number;
  dead: number;
  /** Rows when the statistics were taken; -1 if never. */
  analyzed: number;
}

/** Vacuums and analyzes PGlite's tables by autovacuum's rule; does nothing on PostgreSQL. */
export class Maintenance {
  readonly #database: Database;
  readonly #intervalMs: number;
  readonly #log: (line: string) => void;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<MaintenanceRun> | undefined;

  constructor(database: Database, options: MaintenanceOptions = {}) {
    this.#database = database;
    this.#intervalMs = options.intervalMs ?? 2000;
    this.#log = options.log ?? ((line) => console.error(line));
  }

  /** Starts the periodic pass (PGlite only); the timer does not keep the process alive. */
  start(): void {
    if (this.#database.kind !== "pglite" || this.#timer !== undefined) return;
    const timer = setInterval(() => {
      this.run().catch((error) => this.#log(`maintenance: ${describeDatabaseError(error)}`));
    }, this.#intervalMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Stops the timer and waits for a pass under way. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => {});
  }

  /** One pass now (joined if one is under way): vacuums and analyzes the tables that need it. */
  run(): Promise<MaintenanceRun> {
    this.#running ??= this.#pass().finally(() => this.#running = undefined);
    return this.#running;
  }

  async #pass(): Promise<MaintenanceRun> {
    const { db } = this.#database;
    const tables = rowsOf<{ name: string; live: string; dead: string; analyzed: string }>(
      await db.execute(sql`
        select s.relname as name, s.n_live_tup as live, s.n_dead_tup as dead,
          c.reltuples as analyzed
        from pg_stat_user_tables s join pg_class c on c.oid = s.relid
        where s.schemaname = 'public'`),
    ).map((row): TableCounters => ({
      name: row.name,
      live: Number(row.live),
      dead: Number(row.dead),
      analyzed: Number(row.analyzed),
    }));
    const done: MaintenanceRun = { vacuumed: [], analyzed: [] };
    for (const table of tables) {
      const vacuum = table.dead > VACUUM_BASE + VACUUM_SCALE * table.live;
      const analyze = table.live > ANALYZE_BASE && (
        table.analyzed < 0 || table.live > ANALYZE_FACTOR * table.analyzed ||
        table.live * ANALYZE_FACTOR < table.analyzed
      );
      if (!vacuum && !analyze) continue;
      const started = performance.now();
      // Table names come from the catalog, not from input; quoted all the same.
      const name = sql.identifier(table.name);
      await db.execute(vacuum ? sql`vacuum (analyze) ${name}` : sql`analyze ${name}`);
      (vacuum ? done.vacuumed : done.analyzed).push(table.name);
      this.#log(
        `maintenance: ${vacuum ? "vacuumed and analyzed" : "analyzed"} ${table.name} ` +
          `(${table.live} live rows, ${table.dead} dead) in ` +
          `${Math.round(performance.now() - started)} ms`,
      );
    }
    return done;
  }
}
