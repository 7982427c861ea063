/** The API's error shape, `{ error: { code, message, details } }`, and the errors that produce it. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ConflictError, isUnavailable, sqlState } from "../db/mod.ts";

/** An error the API answers with its own status and a stable code. */
export class ApiError extends Error {
  readonly status: ContentfulStatusCode;
  readonly code: string;
  readonly details: unknown;

  constructor(
    status: ContentfulStatusCode,
    code: string,
    message: string,
    options: { details?: unknown; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = options.details ?? null;
  }
}

/** The JSON body of an error response. */
export interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

/** Builds an error response. */
export function errorResponse(
  c: Context,
  status: ContentfulStatusCode,
  body: ErrorBody["error"],
): Response {
  return c.json({ error: body } satisfies ErrorBody, status);
}

const HTTP_CODES: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  408: "request_timeout",
  409: "conflict",
  411: "length_required",
  413: "payload_too_large",
  415: "unsupported_media_type",
  416: "range_not_satisfiable",
  422: "unprocessable_entity",
  503: "unavailable",
  507: "insufficient_storage",
};

/** Maps any thrown error to the API's error shape; only a real fault is a 500, and it is logged. */
export function handleError(error: unknown, c: Context): Response {
  if (error instanceof ApiError) {
    return errorResponse(c, error.status, {
      code: error.code,
      message: error.message,
      details: error.details,
    });
  }
  if (error instanceof HTTPException) {
    const status = error.status as ContentfulStatusCode;
    return errorResponse(c, status, {
      code: HTTP_CODES[status] ?? "http_error",
      // Hono's own messages are specific already ("Malformed JSON in request body").
      message: error.message || "Request failed",
      details: null,
    });
  }
  if (sqlState(error) === "53100") {
    return errorResponse(c, 507, {
      code: "insufficient_storage",
      message: "The database's disk is full: nothing was stored",
      details: null,
    });
  }
  if (isUnavailable(error)) {
    // Told at once rather than after a timeout; /readyz and the writer's log say why.
    c.header("Retry-After", "5");
    return errorResponse(c, 503, {
      code: "database_unavailable",
      message: "The database is unavailable: try again later",
      details: null,
    });
  }
  console.error(`${c.req.method} ${new URL(c.req.url).pathname} failed:`, error);
  return errorResponse(c, 500, {
    code: "internal",
    message: "Internal error: see the server log",
    details: null,
  });
}

/** Awaits `work`, answering the storage layer's ConflictError as a 409 with `code`. */
export async function orConflict<T>(code: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof ConflictError) throw new ApiError(409, code, error.message);
    throw error;
  }
}
