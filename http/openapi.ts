/** OpenAPIHono with flotilla's validation errors, and the schemas every route shares. */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { errorResponse } from "./errors.ts";
import type { AppEnv } from "./env.ts";

/** A sub-app whose failed validations answer 400 with the API's error shape. */
export function newApp(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook(result, c) {
      if (result.success) return;
      const issues = result.error.issues.map((issue) => ({
        path: issue.path.map(String).join("."),
        message: issue.message,
      }));
      const first = issues[0];
      return errorResponse(c, 400, {
        code: "invalid_request",
        message: `Invalid ${result.target}${
          first ? `: ${first.path ? `"${first.path}" ` : ""}${first.message}` : ""
        }`,
        details: issues,
      });
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

function errorContent(description: string) {
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
/** The error responses of a route that reads a body: too large, or stalled mid-way. */
export const TOO_LARGE = {
  408: errorContent("The body stopped arriving (FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS)"),
  413: errorContent("Body too large"),
} as const;

/** A UUID path parameter. */
export const IdParam = z.object({
  id: z.uuid().openapi({ param: { name: "id", in: "path" } }),
});

/** `cursor` and `limit` query parameters. */
export const PageQuery = {
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
};

/** JSON body of a request. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { content: { "application/json": { schema } }, required: true };
}

/** A JSON response. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}
