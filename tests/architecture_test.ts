/**
 * The layering in the brief, checked on the source tree's imports: each folder imports only
 * folders below it, app/ only from cli/, and no file is part of an import cycle (tests and
 * benchmarks aside).
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");

// Lowest first: a folder may import itself and any folder before it. actors/ uses policies/'
// Policy type, so policies/ comes first.
const LAYERS = [
  "srup",
  "policies",
  "actors",
  "obs",
  "io",
  "mqtt",
  "device",
  "db",
  "orchestrator",
  "http",
  "sim",
  "app",
  "cli",
  "main.ts",
];
const SKIPPED = new Set(["tests", "bench", "docs", "node_modules", "data", ".git"]);
const IMPORT =
  /(?:^|[\s;}])(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']|(?:^|[\s;])import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

async function sourceFiles(dir: string, found: string[] = []): Promise<string[]> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      if (!SKIPPED.has(entry.name) && !entry.name.startsWith(".")) await sourceFiles(path, found);
    } else if (/\.(ts|js)$/.test(entry.name)) {
      found.push(relative(ROOT, path));
    }
  }
  return found;
}

function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** Relative imports of every source file, as paths from the root. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await sourceFiles(ROOT)) {
    const text = withoutComments(await Deno.readTextFile(join(ROOT, file)));
    const targets: string[] = [];
    for (const match of text.matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2] ?? match[3]!;
      if (specifier.startsWith(".")) targets.push(join(dirname(file), specifier));
    }
    graph.set(file, targets);
  }
  return graph;
}

function layerOf(file: string): string {
  return file.includes("/") ? file.slice(0, file.indexOf("/")) : file;
}

function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (file: string): string[] | null => {
    if (state.get(file) === "done") return null;
    if (state.get(file) === "open") return [...path.slice(path.indexOf(file)), file];
    state.set(file, "open");
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(file, "done");
    return null;
  };
  for (const file of graph.keys()) {
    const cycle = visit(file);
    if (cycle) return cycle;
  }
  return null;
}

Deno.test("every import points down the layers, and app/ is imported only by cli/", async () => {
  const graph = await importGraph();
  assert.ok(graph.size > 100, `found ${graph.size} source files`);
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    assert.ok(LAYERS.includes(from), `"${file}" is in no known layer`);
    for (const target of targets) {
      const to = layerOf(target);
      if (to === from) continue;
      if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) wrong.push(`${file} -> ${target}`);
      if (to === "app" && from !== "cli") wrong.push(`${file} -> ${target} (app/ is for cli/)`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("no source file is part of an import cycle", async () => {
  assert.equal(findCycle(await importGraph())?.join(" -> ") ?? null, null);
});

Deno.test("srup/ and actors/ do no I/O and read no clock", async () => {
  const found: string[] = [];
  for (const file of await sourceFiles(ROOT)) {
    if (!["srup", "actors"].includes(layerOf(file))) continue;
    const text = withoutComments(await Deno.readTextFile(join(ROOT, file)));
    for (
      const use of text.match(/\bDeno\.\w+|Date\.now\(|new Date\(|performance\.now\(|\bfetch\(/g) ??
        []
    ) {
      found.push(`${file}: ${use}`);
    }
  }
  assert.deepEqual(found, []);
});
