/** A typed client of the API (`hc<AppType>`), as `ctl` uses it. */
import { hc } from "hono/client";
import type { AppType } from "./app.ts";

/** A client for the API at `baseUrl` that sends `token` as its bearer token. */
export function createClient(baseUrl: string, token: string) {
  return hc<AppType>(baseUrl, { headers: { authorization: `Bearer ${token}` } });
}

/** The typed client. */
export type Client = ReturnType<typeof createClient>;
