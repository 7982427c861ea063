/** Bearer-token authentication and role checks for /v1. */
import type { MiddlewareHandler } from "hono";
import {
  type ApiToken,
  describeDatabaseError,
  findApiToken,
  type TokenRole,
  touchApiToken,
} from "../db/mod.ts";
import type { Db } from "../db/mod.ts";
import { ApiError } from "./errors.ts";
import type { AppEnv } from "./env.ts";

const RANK: Record<TokenRole, number> = { viewer: 0, operator: 1, admin: 2 };

// Lookups are cached briefly so a busy client costs one query per token per window, not per
// request; revocation through this process clears the cache at once.
const CACHE_MS = 10_000;
const TOUCH_EVERY_MS = 60_000;

/** Resolves plaintext tokens to their rows, with a short cache. */
export class TokenVerifier {
  readonly #db: Db;
  readonly #cache = new Map<string, { token: ApiToken | undefined; until: number }>();
  readonly #touched = new Map<string, number>();

  constructor(db: Db) {
    this.#db = db;
  }

  async verify(plaintext: string): Promise<ApiToken | undefined> {
    const now = Date.now();
    let entry = this.#cache.get(plaintext);
    if (!entry || entry.until < now) {
      const token = await findApiToken(this.#db, plaintext);
      entry = { token, until: now + CACHE_MS };
      if (this.#cache.size > 10_000) this.#cache.clear();
      this.#cache.set(plaintext, entry);
    }
    const token = entry.token;
    if (token && (this.#touched.get(token.id) ?? 0) + TOUCH_EVERY_MS < now) {
      this.#touched.set(token.id, now);
      touchApiToken(this.#db, token.id).catch((error) =>
        console.error(`Cannot record token use: ${describeDatabaseError(error)}`)
      );
    }
    return token;
  }

  /** Forgets cached lookups, as after a revocation. */
  clear(): void {
    this.#cache.clear();
  }
}

/** Requires `Authorization: Bearer <token>` and sets `caller`; 401 otherwise. */
export function authenticate(verifier: TokenVerifier): MiddlewareHandler<AppEnv> {
  return async function authenticate(c, next) {
    const header = c.req.header("authorization");
    const match = header ? /^Bearer +([\x21-\x7e]+) *$/i.exec(header) : null;
    if (!match) {
      c.header("WWW-Authenticate", 'Bearer realm="flotilla"');
      throw new ApiError(
        401,
        "unauthorized",
        header
          ? 'Malformed Authorization header: expected "Bearer <token>"'
          : "Missing bearer token",
      );
    }
    const token = await verifier.verify(match[1]!);
    if (!token || token.revokedAt) {
      c.header("WWW-Authenticate", 'Bearer realm="flotilla", error="invalid_token"');
      throw new ApiError(401, "unauthorized", "Invalid or revoked token");
    }
    c.set("caller", { id: token.id, name: token.name, role: token.role });
    await next();
  };
}

/** Requires at least `role`; 403 otherwise. */
export function requireRole(role: TokenRole): MiddlewareHandler<AppEnv> {
  return async function requireRole(c, next) {
    const caller = c.get("caller");
    if (RANK[caller.role] < RANK[role]) {
      throw new ApiError(
        403,
        "forbidden",
        `Token "${caller.name}" has role "${caller.role}": this needs "${role}"`,
      );
    }
    await next();
  };
}
