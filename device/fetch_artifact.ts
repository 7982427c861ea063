/** Downloading an artifact the device was told to fetch, mapped to SRUP status bytes. */
import { createHash } from "node:crypto";
import { UPDATE_FAIL_FILE, UPDATE_FAIL_HTTP_ERROR, UPDATE_FAIL_SERVER } from "../srup/mod.ts";
import type { Clock } from "../io/clock.ts";
import type { ArtifactWriter } from "./store.ts";

/** Bounds on a download. */
export interface FetchLimits {
  /** Until the response headers arrive: connection, TLS and the server's first byte. */
  connectTimeoutMs: number;
  /** For the whole download, body included. */
  totalTimeoutMs: number;
  /** Largest body accepted, in bytes. */
  maxBytes: number;
}

/** Defaults sized for firmware over a slow link: 64 MiB within 10 minutes. */
export const DEFAULT_FETCH_LIMITS: FetchLimits = {
  connectTimeoutMs: 15_000,
  totalTimeoutMs: 600_000,
  maxBytes: 64 * 1024 * 1024,
};

/** Options for {@linkcode fetchArtifact}. */
export interface FetchArtifactOptions {
  fetch: typeof fetch;
  clock: Clock;
  limits: FetchLimits;
  /** Allow plain http to any host; otherwise only to loopback hosts. */
  allowHttp: boolean;
  /** Receives the body as it streams in. */
  writer: ArtifactWriter;
}

/** A download that completed: its SHA-256 and size. */
export interface FetchSuccess {
  ok: true;
  digest: Uint8Array;
  size: number;
}

/** A download that failed: the status to reply and a reason for the log. */
export interface FetchFailure {
  ok: false;
  status: number;
  reason: string;
}

/** Downloads `url` into the writer, hashing as it goes; never throws. */
export async function fetchArtifact(
  url: string,
  options: FetchArtifactOptions,
): Promise<FetchSuccess | FetchFailure> {
  // An URL the device must not fetch is answered "file not retrieved": nothing was attempted.
  const refused = refuseUrl(url, options.allowHttp);
  if (refused) return { ok: false, status: UPDATE_FAIL_FILE, reason: refused };
  const { clock, limits } = options;
  const controller = new AbortController();
  let timedOut: string | undefined;
  function timeout(reason: string): () => void {
    return () => {
      timedOut ??= reason;
      controller.abort();
    };
  }
  const connectTimer = clock.setTimeout(timeout("connect_timeout"), limits.connectTimeoutMs);
  const totalTimer = clock.setTimeout(timeout("total_timeout"), limits.totalTimeoutMs);
  try {
    let response: Response;
    try {
      response = await options.fetch(url, { signal: controller.signal });
    } catch (error) {
      return { ok: false, status: UPDATE_FAIL_SERVER, reason: timedOut ?? describe(error) };
    } finally {
      clock.clearTimeout(connectTimer);
    }
    const failure = checkResponse(response, options);
    if (failure) {
      await response.body?.cancel().catch(() => {});
      return failure;
    }
    return await readBody(response, options, () => timedOut);
  } finally {
    clock.clearTimeout(totalTimer);
    controller.abort();
  }
}

function checkResponse(
  response: Response,
  options: FetchArtifactOptions,
): FetchFailure | undefined {
  if (response.status === 404 || response.status === 410) {
    return { ok: false, status: UPDATE_FAIL_FILE, reason: `http_${response.status}` };
  }
  if (!response.ok) {
    return { ok: false, status: UPDATE_FAIL_HTTP_ERROR, reason: `http_${response.status}` };
  }
  // A redirect may not lead where the URL itself could not go.
  const refused = response.url ? refuseUrl(response.url, options.allowHttp) : undefined;
  if (refused) return { ok: false, status: UPDATE_FAIL_FILE, reason: `redirect_${refused}` };
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > options.limits.maxBytes) {
    return { ok: false, status: UPDATE_FAIL_FILE, reason: "too_large" };
  }
  return undefined;
}

async function readBody(
  response: Response,
  options: FetchArtifactOptions,
  timedOut: () => string | undefined,
): Promise<FetchSuccess | FetchFailure> {
  const hash = createHash("sha256");
  let size = 0;
  if (!response.body) return { ok: true, digest: new Uint8Array(hash.digest()), size };
  const reader = response.body.getReader();
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        const reason = timedOut();
        // A stalled body is the server not responding; a body cut short is a broken file.
        if (reason) return { ok: false, status: UPDATE_FAIL_SERVER, reason };
        return { ok: false, status: UPDATE_FAIL_FILE, reason: `broken_body: ${describe(error)}` };
      }
      if (chunk.done) break;
      size += chunk.value.length;
      if (size > options.limits.maxBytes) {
        return { ok: false, status: UPDATE_FAIL_FILE, reason: "too_large" };
      }
      hash.update(chunk.value);
      try {
        await options.writer.write(chunk.value);
      } catch (error) {
        return { ok: false, status: UPDATE_FAIL_FILE, reason: `store_failed: ${describe(error)}` };
      }
    }
  } finally {
    reader.releaseLock();
    await response.body.cancel().catch(() => {});
  }
  return { ok: true, digest: new Uint8Array(hash.digest()), size };
}

/** Why the device must not fetch `url`, or undefined when it may. */
export function refuseUrl(url: string, allowHttp: boolean): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "invalid_url";
  }
  if (parsed.protocol === "https:") return undefined;
  if (parsed.protocol !== "http:") return "unsupported_scheme";
  return allowHttp || isLoopback(parsed.hostname) ? undefined : "http_refused";
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
