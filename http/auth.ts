/** Bearer-token authentication and role checks for /v1. */
import type { MiddlewareHandler } from "hono";
import {
  type ApiToken,
  describeDatabaseError,
  findApiTokenByHash,
  hashToken,
  MAX_TOKEN_LENGTH,
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
// Each cache is keyed by the token's SHA-256 and holds at most this many entries, least recently
// used dropped first: whatever clients send, the caches stay under a few hundred KB. Unknown
// tokens have their own cache, so a flood of made-up ones cannot push the real ones out.
const CACHE_ENTRIES = 1024;

interface CacheEntry {
  token: ApiToken | undefined;
  until: number;
}

/** Options for {@linkcode TokenVerifier}. */
export interface TokenVerifierOptions {
  /** The clock cache entries expire by; default `Date.now`. */
  now?: () => number;
}

/** Resolves plaintext tokens to their rows, with a short, bounded cache. */
export class TokenVerifier {
  readonly #db: Db;
  readonly #now: () => number;
  readonly #known = new Map<string, CacheEntry>();
  readonly #unknown = new Map<string, CacheEntry>();
  readonly #touched = new Map<string, number>();
  #lookups = 0;

  constructor(db: Db, options: TokenVerifierOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
  }

  /** Cached lookups, known and unknown tokens together. */
  get size(): number {
    return this.#known.size + this.#unknown.size;
  }

  /** Database lookups made so far. */
  get lookups(): number {
    return this.#lookups;
  }

  /** The token's row, or undefined for an unknown token or one over MAX_TOKEN_LENGTH. */
  async verify(plaintext: string): Promise<ApiToken | undefined> {
    if (plaintext.length > MAX_TOKEN_LENGTH) return undefined;
    const now = this.#now();
    const hash = await hashToken(plaintext);
    let entry = this.#known.get(hash) ?? this.#unknown.get(hash);
    if (!entry || entry.until < now) {
      this.#lookups++;
      const token = await findApiTokenByHash(this.#db, hash);
      this.#known.delete(hash);
      entry = { token, until: now + CACHE_MS };
    }
    remember(entry.token ? this.#known : this.#unknown, hash, entry);
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
    this.#known.clear();
    this.#unknown.clear();
  }
}

/** Puts `entry` last in `cache` (a Map keeps insertion order), dropping the oldest over the cap. */
function remember(cache: Map<string, CacheEntry>, key: string, entry: CacheEntry): void {
  cache.delete(key);
  cache.set(key, entry);
  if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
}

// "Bearer ", the token, and some room for spaces: a longer header is refused unread.
const MAX_HEADER_LENGTH = MAX_TOKEN_LENGTH + 32;

/** Requires `Authorization: Bearer <token>` and sets `caller`; 401 otherwise. */
export function authenticate(verifier: TokenVerifier): MiddlewareHandler<AppEnv> {
  return async function authenticate(c, next) {
    const header = c.req.header("authorization");
    if (header && header.length > MAX_HEADER_LENGTH) {
      c.header("WWW-Authenticate", 'Bearer realm="flotilla", error="invalid_token"');
      throw new ApiError(
        401,
        "unauthorized",
        `Authorization header of ${header.length} characters: a bearer token is at most ${MAX_TOKEN_LENGTH} characters`,
      );
    }
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
    const plaintext = match[1]!;
    if (plaintext.length > MAX_TOKEN_LENGTH) {
      c.header("WWW-Authenticate", 'Bearer realm="flotilla", error="invalid_token"');
      throw new ApiError(
        401,
        "unauthorized",
        `Bearer token of ${plaintext.length} characters: a token is at most ${MAX_TOKEN_LENGTH} characters`,
      );
    }
    const token = await verifier.verify(plaintext);
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
