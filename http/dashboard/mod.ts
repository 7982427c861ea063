/**
 * The live dashboard: `GET /` serves the page, `GET /ui/*` its script, styles and the state
 * vocabulary. The page itself
 * needs no token; it calls the /v1 API with the operator's token, kept in session storage.
 *
 * @module
 */
import { Hono } from "hono";
import { VOCABULARY } from "../../actors/states.ts";

// Read once at start; the files are small and served from memory.
const STATIC = new URL("./static/", import.meta.url);

interface Asset {
  body: string;
  type: string;
}

function asset(name: string, type: string): Asset {
  return { body: Deno.readTextFileSync(new URL(name, STATIC)), type };
}

/** The state vocabulary the page loads, from the one in actors/: the page keeps no copy. */
function vocabularyJson(): Asset {
  return { body: JSON.stringify(VOCABULARY), type: "application/json" };
}

// Everything the page loads is its own: no inline script, no CDN, no other origin.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** The dashboard sub-app, to mount at the root. */
export function dashboardApp(): Hono {
  const page = asset("index.html", "text/html; charset=utf-8");
  const assets: Record<string, Asset> = {
    "app.js": asset("app.js", "text/javascript; charset=utf-8"),
    "app.css": asset("app.css", "text/css; charset=utf-8"),
    "vocabulary.json": vocabularyJson(),
  };
  return new Hono()
    .get("/", (c) => {
      c.header("Content-Security-Policy", CSP);
      c.header("X-Content-Type-Options", "nosniff");
      c.header("Cache-Control", "no-cache");
      return c.html(page.body);
    })
    .get("/ui/:name", async (c, next) => {
      const found = assets[c.req.param("name")];
      // Unknown names fall through to the app's JSON 404.
      if (!found) return await next();
      c.header("Content-Type", found.type);
      c.header("X-Content-Type-Options", "nosniff");
      c.header("Cache-Control", "no-cache");
      return c.body(found.body);
    });
}
