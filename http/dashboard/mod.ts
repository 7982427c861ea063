/**
 * The operator console: `GET /` serves the page, `GET /ui/*` its modules and styles, and
 * `/ui/vocabulary.json` the state words (as `GET /v1/states`), and
 * `GET /ui/vendor/*` the UI library (Preact, its hooks, htm) from the npm packages pinned in
 * deno.json. The page needs no token; it calls the documented /v1 API with the operator's token,
 * kept in session storage.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type Context, Hono } from "hono";
import { CLIENT_VOCABULARY } from "../vocabulary.ts";

// Read once at start; the files are small and served from memory.
const STATIC = new URL("./static/", import.meta.url);

/** The console's own modules, as served under /ui/. */
const MODULES = [
  "app.js",
  "api.js",
  "ui.js",
  "rollouts.js",
  "rollout.js",
  "new_rollout.js",
  "devices.js",
  "artifacts.js",
  "policies.js",
  "tokens.js",
];

interface Asset {
  body: string;
  type: string;
}

const JS = "text/javascript; charset=utf-8";

function asset(url: URL, type: string): Asset {
  return { body: Deno.readTextFileSync(url), type };
}

/** A file of an npm package, found beside the module `specifier` resolves to. */
function packageFile(specifier: string, sibling?: string): URL {
  const resolved = new URL(import.meta.resolve(specifier));
  return sibling ? new URL(sibling, resolved) : resolved;
}

function assetResponse(c: Context, found: Asset): Response {
  c.header("Content-Type", found.type);
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Cache-Control", "no-cache");
  return c.body(found.body);
}

// The import map is the page's one inline script, allowed by its hash.
const IMPORT_MAP = /<script type="importmap">([\s\S]*?)<\/script>/;

function sha256Base64(text: string): string {
  return createHash("sha256").update(text).digest("base64");
}

// Everything the page loads is its own: no other inline script, no CDN, no other origin.
function contentSecurityPolicy(importMapHash: string): string {
  return [
    "default-src 'self'",
    `script-src 'self' 'sha256-${importMapHash}'`,
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}

/** The console sub-app, to mount at the root. */
export function dashboardApp(): Hono {
  const page = asset(new URL("index.html", STATIC), "text/html; charset=utf-8");
  const importMap = IMPORT_MAP.exec(page.body)?.[1];
  if (importMap === undefined) {
    throw new Error("Cannot serve console: index.html has no import map");
  }
  const csp = contentSecurityPolicy(sha256Base64(importMap));
  // Maps, not objects: a name like "constructor" must not find anything.
  const assets = new Map<string, Asset>([
    ["app.css", asset(new URL("app.css", STATIC), "text/css; charset=utf-8")],
    ...MODULES.map((name): [string, Asset] => [name, asset(new URL(name, STATIC), JS)]),
    // The state words the console renders with, from actors/: it keeps no copy.
    ["vocabulary.json", { body: JSON.stringify(CLIENT_VOCABULARY), type: "application/json" }],
  ]);
  const vendor = new Map<string, Asset>([
    ["preact.mjs", asset(packageFile("preact"), JS)],
    ["hooks.mjs", asset(packageFile("preact/hooks"), JS)],
    ["htm.mjs", asset(packageFile("htm", "htm.module.js"), JS)],
  ]);
  return new Hono()
    .get("/", (c) => {
      c.header("Content-Security-Policy", csp);
      c.header("X-Content-Type-Options", "nosniff");
      c.header("Cache-Control", "no-cache");
      return c.html(page.body);
    })
    .get("/ui/vendor/:name", async (c, next) => {
      const found = vendor.get(c.req.param("name"));
      // Unknown names fall through to the app's JSON 404.
      return found ? assetResponse(c, found) : await next();
    })
    .get("/ui/:name", async (c, next) => {
      const found = assets.get(c.req.param("name"));
      return found ? assetResponse(c, found) : await next();
    });
}
