/** 405 Method Not Allowed with `Allow`, and OPTIONS, for every route the app serves. */
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors.ts";

/** A route as Hono lists it (`app.routes`). */
export interface RouteEntry {
  method: string;
  path: string;
}

interface PathMethods {
  segments: string[];
  methods: Set<string>;
}

// The order `Allow` lists methods in; OPTIONS always comes last.
const ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/** Groups routes by path; middleware (`ALL`) is not a route. */
function tableOf(routes: readonly RouteEntry[]): PathMethods[] {
  const byPath = new Map<string, Set<string>>();
  for (const { method, path } of routes) {
    if (method === "ALL") continue;
    const methods = byPath.get(path) ?? new Set();
    methods.add(method);
    // Hono answers HEAD with the GET route.
    if (method === "GET") methods.add("HEAD");
    byPath.set(path, methods);
  }
  return [...byPath].map(([path, methods]) => ({ segments: path.split("/"), methods }));
}

/** How well `pattern` matches `segments`: one rank per segment (2 literal, 1 parameter, 0 `*`). */
function rank(pattern: string[], segments: string[]): number[] | undefined {
  const ranks: number[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const part = pattern[i]!;
    if (part === "*") return [...ranks, 0];
    const segment = segments[i];
    if (segment === undefined) return undefined;
    if (part.startsWith(":")) {
      if (segment === "") return undefined;
      ranks.push(1);
    } else if (part === segment) ranks.push(2);
    else return undefined;
  }
  return pattern.length === segments.length ? ranks : undefined;
}

function better(a: number[], b: number[]): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i]! > b[i]!;
  }
  return a.length > b.length;
}

/** The methods `path` answers, as the most specific route (a literal segment before a parameter) says. */
export function allowedMethods(
  table: readonly PathMethods[],
  path: string,
): Set<string> | undefined {
  const segments = path.split("/");
  let best: { ranks: number[]; methods: Set<string> } | undefined;
  for (const entry of table) {
    const ranks = rank(entry.segments, segments);
    if (!ranks) continue;
    if (!best || better(ranks, best.ranks)) best = { ranks, methods: new Set(entry.methods) };
    else if (ranks.join() === best.ranks.join()) entry.methods.forEach((m) => best!.methods.add(m));
  }
  return best?.methods;
}

/**
 * Answers a method the path does not have with 405 and `Allow`, and OPTIONS with 204 and `Allow`,
 * before authentication (a method says nothing about any resource). `routes` is read on the first
 * request, once every route is registered.
 */
export function methodGuard(routes: () => readonly RouteEntry[]): MiddlewareHandler {
  let table: PathMethods[] | undefined;
  return async function methodGuard(c, next) {
    table ??= tableOf(routes());
    const methods = allowedMethods(table, c.req.path);
    // An unknown path is the 404 handler's.
    if (!methods || methods.has(c.req.method)) return await next();
    const allow = [...ORDER.filter((method) => methods.has(method)), "OPTIONS"].join(", ");
    c.header("Allow", allow);
    if (c.req.method === "OPTIONS") return c.body(null, 204);
    throw new ApiError(
      405,
      "method_not_allowed",
      `Method ${c.req.method} ${c.req.path} is not allowed: use ${allow}`,
      { details: { allow: allow.split(", ") } },
    );
  };
}
