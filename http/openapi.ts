/** OpenAPIHono with flotilla's validation errors, and the schemas every route shares. */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { ApiError } from "./errors.ts";
import { queryInt } from "./fields.ts";
import type { AppEnv } from "./env.ts";

type Issue = z.core.$ZodIssue;

/**
 * The issues as `{ path, message }`; a union that matched no branch reports the branch that got
 * furthest (the longest path), e.g. `targets.tags.k` rather than "Invalid input" at `targets`.
 */
function flatten(issues: readonly Issue[], prefix: PropertyKey[] = []) {
  const out: { path: string; message: string }[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "invalid_union" && issue.errors.length > 0) {
      const depth = (branch: readonly Issue[]) => Math.max(...branch.map((i) => i.path.length));
      const branch = issue.errors.reduce((best, next) => depth(next) > depth(best) ? next : best);
      out.push(...flatten(branch, path));
    } else out.push({ path: path.map(String).join("."), message: issue.message });
  }
  return out;
}

/** The 400 of a failed validation of `target` (json, query, param, header), naming the field. */
export function invalidRequest(target: string, error: z.ZodError): ApiError {
  const issues = flatten(error.issues);
  const first = issues[0];
  return new ApiError(
    400,
    "invalid_request",
    `Invalid ${target}${first ? `: ${first.path ? `"${first.path}" ` : ""}${first.message}` : ""}`,
    { details: issues },
  );
}

/** A sub-app whose failed validations answer 400 with the API's error shape. */
export function newApp(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook(result) {
      if (!result.success) throw invalidRequest(result.target, result.error);
    },
  });
}

/** `{ error: { code, message, details } }`. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().openapi({ example: "invalid_request" }),
    message: z.string(),
    details: z.unknown(),
  }),
}).openapi("Error");

/** An error response with the Error schema. */
export function errorContent(description: string) {
  return { description, content: { "application/json": { schema: ErrorSchema } } };
}

/** The error responses of an authenticated route. */
export const AUTH_ERRORS = {
  400: errorContent("Bad input"),
  401: errorContent("Missing or bad token"),
  403: errorContent("The token's role does not allow this"),
} as const;

/** The error responses of a route addressing one thing. */
export const NOT_FOUND = { 404: errorContent("No such thing") } as const;
/** The error response of a conflicting write. */
export const CONFLICT = { 409: errorContent("Conflicts with the current state") } as const;
/** The error response of an oversized body. */
export const TOO_LARGE = { 413: errorContent("Body too large") } as const;

/** A UUID path parameter. */
export const IdParam = z.object({
  id: z.uuid().openapi({ param: { name: "id", in: "path" } }),
});

/** The `limit` query parameter of a page. */
export const Limit = queryInt("limit", 1, 1000).optional().openapi({
  description: "How many items a page holds at most (default 100)",
});

/** A `cursor` query parameter that is the id (a UUID) of the previous page's last item. */
export const UuidCursor = z.uuid().optional().openapi({
  description: "The nextCursor of the previous page",
});

/** JSON body of a request. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { content: { "application/json": { schema } }, required: true };
}

/** A JSON response. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** The tags operations are grouped by, in the order /docs shows them. */
export const TAGS = [
  { name: "devices", description: "Register, list, inspect and remove devices" },
  { name: "artifacts", description: "Upload or register the files rollouts install" },
  { name: "rollouts", description: "Create rollouts, follow them and steer them" },
  { name: "policies", description: "The policies rollouts follow" },
  { name: "events", description: "What happened, live and as history" },
  { name: "tokens", description: "API tokens (admins only)" },
  { name: "server", description: "Who the server and the caller are, and the state words" },
  { name: "operations", description: "Health, readiness, metrics and this document" },
  { name: "downloads", description: "Artifacts as devices fetch them (no token)" },
] as const;

const ERROR_REF = { $ref: "#/components/schemas/Error" };

// Statuses that come from the service around the routes, not from a route's own code.
const STARTING =
  "The service is starting, or its database is unavailable: try again after Retry-After";
const TOO_LARGE_BODY = "The body exceeds FLOTILLA_MAX_JSON_BYTES";
const STALLED_BODY = "The body stopped arriving: the connection is closed";
const STALLED = "The body sent nothing for FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS: cut off";
const DISK_FULL = "The disk is full: nothing was stored";

type Operation = {
  responses?: Record<string, unknown>;
  requestBody?: { content?: Record<string, unknown> };
};

/**
 * Adds to every operation of `doc` the statuses the service answers around the routes: 503 while
 * starting or without a database, 408 for a body that stalls, 413 for an oversized JSON body, 507
 * for a write to a full disk.
 */
export function withServiceStatuses<T extends { paths?: Record<string, unknown> }>(doc: T): T {
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, value] of Object.entries(item as Record<string, Operation>)) {
      const responses = value.responses ??= {};
      const add = (status: string, description: string) => {
        responses[status] ??= {
          description,
          content: { "application/json": { schema: ERROR_REF } },
        };
      };
      if (path !== "/healthz") add("503", STARTING);
      if (value.requestBody) add("408", STALLED);
      if (value.requestBody?.content?.["application/json"]) add("413", TOO_LARGE_BODY);
      if (value.requestBody) add("408", STALLED_BODY);
      if (method === "post" || method === "delete") add("507", DISK_FULL);
    }
  }
  return doc;
}
