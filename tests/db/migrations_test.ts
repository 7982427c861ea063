import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("db/migrations matches db/schema.ts: drizzle-kit has nothing to generate", async () => {
  // drizzle-kit takes --out relative to the working directory; tests/out/ is ignored by git.
  await Deno.mkdir(`${ROOT}tests/out`, { recursive: true });
  const out = await Deno.makeTempDir({ dir: `${ROOT}tests/out`, prefix: "migrations-" });
  try {
    await Deno.mkdir(`${out}/meta`);
    for await (const entry of Deno.readDir(`${ROOT}db/migrations`)) {
      if (entry.isFile) {
        await Deno.copyFile(`${ROOT}db/migrations/${entry.name}`, `${out}/${entry.name}`);
      }
    }
    for await (const entry of Deno.readDir(`${ROOT}db/migrations/meta`)) {
      await Deno.copyFile(`${ROOT}db/migrations/meta/${entry.name}`, `${out}/meta/${entry.name}`);
    }
    // The same command as `deno task db:generate`, writing into a copy so a drift changes nothing.
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "node_modules/drizzle-kit/bin.cjs",
        "generate",
        "--dialect=postgresql",
        "--casing=snake_case",
        "--schema=./db/schema.ts",
        `--out=${relative(ROOT, out)}`,
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = new TextDecoder().decode(result.stdout) +
      new TextDecoder().decode(result.stderr);
    assert.equal(result.code, 0, output);
    assert.match(output, /No schema changes, nothing to migrate/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
