/** Reaching a running orchestrator from the CLI: its URL, the typed client, and its answers. */
import { type Client, createClient } from "../http/client.ts";
import { UsageError } from "./args.ts";

/** Where the API is and how to call it. */
export interface ApiTarget {
  url: string;
  client: Client;
}

/**
 * The API at `text` with `token`; a URL that is not http(s) is a usage error naming `setting`
 * (`--api` or `FLOTILLA_API`), so it never reaches fetch as "Invalid URL".
 */
export function apiTarget(text: string, token: string, setting: string): ApiTarget {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== "http:" && url?.protocol !== "https:") {
    throw new UsageError(`Invalid ${setting} "${text}": expected an http:// or https:// URL`);
  }
  const base = text.replace(/\/+$/, "");
  return { url: base, client: createClient(base, token) };
}

/** The JSON body of an API answer; an error answer or an unreachable API throws one line. */
export async function answer(
  api: ApiTarget,
  request: Promise<{ ok: boolean; status: number; text(): Promise<string> }>,
): Promise<unknown> {
  const response = await reach(api, request);
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!response.ok) {
    const error = (body as { error?: { code: string; message: string } } | null)?.error;
    throw new Error(
      error
        ? `${response.status} ${error.code}: ${error.message}`
        : `${response.status}: ${text.slice(0, 200)}`,
    );
  }
  return body;
}

/** Awaits a request, turning a network failure into one line naming the API. */
export async function reach<T>(api: ApiTarget, request: Promise<T>): Promise<T> {
  try {
    return await request;
  } catch (error) {
    throw new Error(`Cannot reach the API at "${api.url}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}
