/** The Hono environment shared by every route: who is calling. */
import type { TokenRole } from "../db/mod.ts";

/** The authenticated caller. */
export interface Caller {
  id: string;
  name: string;
  role: TokenRole;
}

/** Hono generics for flotilla's apps. */
export interface AppEnv {
  Variables: { caller: Caller };
}
