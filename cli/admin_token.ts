/** `flotilla admin-token`: a way back in without the API, minting an admin token in the database. */
import { createApiToken, openDatabase } from "../db/mod.ts";
import { readConfig } from "../orchestrator/config.ts";
import { parse, UsageError } from "./args.ts";

export const HELP = `Usage: deno task admin-token [--name NAME]

Mints a new admin token in the database the server uses (DATABASE_URL, or the PGlite folder under
FLOTILLA_DATA_DIR, default ./data) and prints it once on stdout; only its hash is stored. With
PGlite, stop the server first: one process at a time may open its folder.

Options:
  --name NAME   the token's name, unique among live tokens   default admin-<date and time>`;

const NAME = /^[\w.@-]{1,64}$/;

/** Runs `admin-token`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    help: { type: "boolean", short: "h" },
    name: { type: "string" },
  }, true);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`Unexpected argument "${positionals[0]}"`);
  const name = values.name ?? `admin-${new Date().toISOString().replace(/[-:]|\.\d+/g, "")}`;
  if (!NAME.test(name)) {
    throw new UsageError(`Invalid --name: "${name}" is not 1 to 64 of A-Z a-z 0-9 _ . @ -`);
  }
  let database;
  try {
    const config = readConfig();
    database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  } catch (error) {
    console.error(`admin-token: ${(error as Error).message}`);
    return 1;
  }
  try {
    const { plaintext } = await createApiToken(database.db, { name, role: "admin" });
    console.log(plaintext);
    console.error(
      `admin token "${name}" created in ${database.location}: shown once, keep it; only its hash is stored`,
    );
    return 0;
  } catch (error) {
    console.error(`admin-token: ${(error as Error).message}`);
    return 1;
  } finally {
    await database.close();
  }
}
