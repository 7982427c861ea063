// The console's only way to the server: the documented /v1 API, with the token of this tab.

const TOKEN_KEY = "flotilla.token";
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10_000;

/** The token this tab signed in with, kept in session storage only. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

/** An API error with the server's status, code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Listeners told when the token is refused (401), so the console asks for another. */
const refusedListeners = new Set();
export function onRefused(listener) {
  refusedListeners.add(listener);
  return () => refusedListeners.delete(listener);
}

/**
 * Calls the API. `body` is sent as JSON, or as raw bytes when it is a Blob (an upload).
 * Resolves to the parsed JSON (null for an empty answer); rejects with ApiError.
 */
export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token()}`, accept: "application/json" };
  let payload;
  if (body instanceof Blob) {
    headers["content-type"] = "application/octet-stream";
    payload = body;
  } else if (body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy's error page, say; the status line says enough.
  }
  if (!response.ok) {
    const error = parsed?.error;
    if (response.status === 401) { for (const listener of refusedListeners) listener(); }
    throw new ApiError(
      response.status,
      error?.code ?? "http_error",
      error?.message ?? `${method} ${path} answered ${response.status}`,
    );
  }
  return parsed;
}

/** `?a=1&b=2` of the set values of `params` (arrays repeat the key); "" when none is set. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, String(one));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * Reads `/v1/events` with fetch, since EventSource cannot send the bearer token; reconnects with
 * Last-Event-ID so no event is missed. Returns a function that stops it.
 */
export function streamEvents(params, { onEvent, onState }) {
  const controller = new AbortController();
  let lastId;
  let delay = RECONNECT_MIN_MS;

  function dispatch(message) {
    if (message.id !== undefined) lastId = message.id;
    if (message.data === undefined) return;
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    onEvent(message.event ?? "message", data);
  }

  async function readOnce() {
    const headers = { authorization: `Bearer ${token()}`, accept: "text/event-stream" };
    if (lastId !== undefined) headers["last-event-id"] = lastId;
    const response = await fetch(`/v1/events${query(params)}`, {
      headers,
      signal: controller.signal,
    });
    if (!response.ok || !response.body) {
      throw new ApiError(response.status, "http_error", `Event stream answered ${response.status}`);
    }
    onState(true);
    delay = RECONNECT_MIN_MS;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let message = {};
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          dispatch(message);
          message = {};
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") {
          message.data = message.data === undefined ? text : `${message.data}\n${text}`;
        } else if (field === "event") message.event = text;
        else if (field === "id") message.id = text;
      }
    }
  }

  (async () => {
    while (!controller.signal.aborted) {
      try {
        await readOnce();
      } catch (error) {
        if (controller.signal.aborted) return;
        // A refused token will not get better by retrying.
        if (error.status === 401 || error.status === 403) return onState(false);
        console.warn("flotilla: event stream:", error);
      }
      onState(false);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  })();
  return () => controller.abort();
}
