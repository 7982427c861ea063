/** drizzle-kit configuration: `deno task db:generate` writes db/migrations/ from db/schema.ts. */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
  casing: "snake_case",
});
