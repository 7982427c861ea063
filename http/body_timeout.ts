/** A request body that stops arriving is cut off: 408, and the connection closed. */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./env.ts";
import { ApiError, errorResponse } from "./errors.ts";

/** Options for {@linkcode bodyIdleTimeout}. */
export interface BodyIdleTimeoutOptions {
  /** Longest wait for the body's next bytes. */
  ms: number;
  /** The setting that sets `ms`, named in the answer. */
  setting: string;
}

/**
 * Middleware: each read of the request body waits at most `ms`. When one waits longer, the reader
 * sees an error (an upload removes its partial file) and, whatever the handler made of that, the
 * answer is 408. The rest of the body is left unread, so Deno.serve answers `Connection: close`;
 * Deno 2.9 then still holds the socket until the client sends the rest or hangs up (it has no read
 * timeout, denoland/deno#3515): a proxy in front bounds that (docs/operations.md).
 */
export function bodyIdleTimeout(options: BodyIdleTimeoutOptions): MiddlewareHandler<AppEnv> {
  return async function bodyIdleTimeout(c, next) {
    const body = c.req.raw.body;
    if (!body) return await next();
    const message = `Request body stalled: no bytes for ${options.ms} ms (${options.setting})`;
    let stalled = false;
    const reader = body.getReader();
    const guarded = new ReadableStream<Uint8Array>({
      async pull(controller) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const idle = new Promise<"idle">((resolve) => {
          timer = setTimeout(() => resolve("idle"), options.ms);
        });
        try {
          const read = await Promise.race([reader.read(), idle]);
          if (read === "idle") {
            stalled = true;
            const error = new ApiError(408, "request_timeout", message);
            controller.error(error);
          } else if (read.done) {
            controller.close();
          } else {
            controller.enqueue(read.value);
          }
        } catch (error) {
          controller.error(error);
        } finally {
          clearTimeout(timer);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 });
    c.req.raw = new Request(c.req.raw, { body: guarded, duplex: "half" } as RequestInit);
    await next();
    if (stalled) {
      // The handler may have answered its own way (400 for a body it could not parse): the stall
      // is the cause.
      c.res = undefined;
      c.res = errorResponse(c, 408, { code: "request_timeout", message, details: null });
    }
  };
}
