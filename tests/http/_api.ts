/** In-process requests to a test service's API, and the error-shape assertion the HTTP tests share. */
import assert from "node:assert/strict";
import type { Service } from "../../app/service.ts";
import { ADMIN_TOKEN } from "../orchestrator/_service.ts";

/** A valid device public key (base64 of 32 bytes). */
export const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/** An answer, its body parsed as JSON when it is JSON. */
export interface Reply {
  status: number;
  // deno-lint-ignore no-explicit-any -- response bodies are checked field by field
  body: any;
  headers: Headers;
}

/** Calls the service's app in process, as the admin unless `token` says otherwise (null: none). */
export async function request(
  service: Service,
  method: string,
  path: string,
  options: {
    token?: string | null;
    json?: unknown;
    body?: BodyInit;
    headers?: Record<string, string>;
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body = options.body;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const response = await service.app.request(path, { method, headers, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: kept as text.
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

/** Asserts an error answer: its status, its code, and optionally its message. */
export function assertError(reply: Reply, status: number, code: string, message?: RegExp) {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  assert.equal(reply.body.error.code, code, JSON.stringify(reply.body));
  assert.equal(typeof reply.body.error.message, "string");
  assert.ok("details" in reply.body.error);
  if (message) assert.match(reply.body.error.message, message);
}
