/** API tokens: only a SHA-256 hash is stored; the plaintext is shown once, at creation. */
import { and, asc, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "./open.ts";
import { equalBytes, fromHex } from "../srup/mod.ts";
import { ConflictError, guard } from "./errors.ts";
import { apiTokens, type TokenRole } from "./schema.ts";

/** A token's record, without its hash. */
export type ApiToken = Omit<typeof apiTokens.$inferSelect, "hash">;

/** What creating a token takes. */
export interface NewApiToken {
  /** Unique among live tokens; the actor named in the audit log. */
  name: string;
  role: TokenRole;
  /** A token chosen elsewhere (FLOTILLA_ADMIN_TOKEN); default: 32 random bytes. */
  plaintext?: string;
}

/** A new token: its record and the plaintext, which is not stored anywhere. */
export interface CreatedApiToken {
  token: ApiToken;
  plaintext: string;
}

const PUBLIC_COLUMNS = {
  id: apiTokens.id,
  name: apiTokens.name,
  role: apiTokens.role,
  createdAt: apiTokens.createdAt,
  lastUsedAt: apiTokens.lastUsedAt,
  revokedAt: apiTokens.revokedAt,
};

/**
 * Longest token accepted: generated ones are 47 characters. Anything longer is refused before it
 * is hashed or looked up, so made-up tokens cost little.
 */
export const MAX_TOKEN_LENGTH = 512;

/** Lowercase hex SHA-256 of a token's UTF-8 text. */
export async function hashToken(plaintext: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(plaintext));
  return new Uint8Array(digest).toHex();
}

/** Creates a token; a ConflictError if a live token has the name or the plaintext is in use. */
export async function createApiToken(db: Db, request: NewApiToken): Promise<CreatedApiToken> {
  const plaintext = request.plaintext ??
    `flt_${
      crypto.getRandomValues(new Uint8Array(32)).toBase64({
        alphabet: "base64url",
        omitPadding: true,
      })
    }`;
  if (plaintext.length < 16 || plaintext.length > MAX_TOKEN_LENGTH) {
    throw new RangeError(
      `Cannot create token: length ${plaintext.length} is outside 16 to ${MAX_TOKEN_LENGTH}`,
    );
  }
  try {
    const [token] = await guard(
      db.insert(apiTokens).values({
        id: crypto.randomUUID(),
        name: request.name,
        role: request.role,
        hash: await hashToken(plaintext),
      }).returning(PUBLIC_COLUMNS),
      "Cannot create token",
    );
    return { token: token!, plaintext };
  } catch (error) {
    if (error instanceof ConflictError && error.constraint === "api_tokens_live_name_idx") {
      throw new ConflictError(`Cannot create token: name "${request.name}" is in use`, {
        cause: error,
        constraint: error.constraint,
      });
    }
    if (error instanceof ConflictError) {
      throw new ConflictError("Cannot create token: the token is already in use", {
        cause: error,
        constraint: error.constraint,
      });
    }
    throw error;
  }
}

/** Options for {@linkcode findApiToken}. */
export interface FindApiTokenOptions {
  /** Also find a revoked token; default false. */
  revoked?: boolean;
}

/** The live (not revoked) token whose hash matches `plaintext`, or undefined. */
export async function findApiToken(
  db: Db,
  plaintext: string,
  options: FindApiTokenOptions = {},
): Promise<ApiToken | undefined> {
  return await findApiTokenByHash(db, await hashToken(plaintext), options);
}

/** The live (not revoked) token whose SHA-256 (lowercase hex, as from `hashToken`) is `hash`. */
export async function findApiTokenByHash(
  db: Db,
  hash: string,
  options: FindApiTokenOptions = {},
): Promise<ApiToken | undefined> {
  const [row] = await guard(
    db.select({ ...PUBLIC_COLUMNS, hash: apiTokens.hash }).from(apiTokens)
      .where(
        options.revoked
          ? eq(apiTokens.hash, hash)
          : and(eq(apiTokens.hash, hash), isNull(apiTokens.revokedAt)),
      ),
    "Cannot find token",
  );
  // The index lookup already matched; a constant-time compare keeps the final check timing-flat.
  if (!row || !equalBytes(fromHex(row.hash), fromHex(hash))) return undefined;
  const { hash: _, ...token } = row;
  return token;
}

/** Records that a token was used now. */
export async function touchApiToken(db: Db, id: string): Promise<void> {
  await guard(
    db.update(apiTokens).set({ lastUsedAt: sql`now()` }).where(eq(apiTokens.id, id)),
    "Cannot record token use",
  );
}

/**
 * Revokes a token; false if there is no live token with this id. A ConflictError for the last
 * live admin token: revoking it would leave no way in through the API.
 */
export async function revokeApiToken(db: Db, id: string): Promise<boolean> {
  return await db.transaction(async (tx) => {
    // Locking every live admin serialises concurrent revocations, so two cannot both see another.
    const admins = await guard(
      tx.select({ id: apiTokens.id, name: apiTokens.name }).from(apiTokens)
        .where(and(eq(apiTokens.role, "admin"), isNull(apiTokens.revokedAt))).for("update"),
      "Cannot revoke token",
    );
    const admin = admins.find((token) => token.id === id);
    if (admin && admins.length === 1) {
      throw new ConflictError(
        `Cannot revoke token: "${admin.name}" is the last live admin token; create another admin first`,
      );
    }
    const rows = await guard(
      tx.update(apiTokens).set({ revokedAt: sql`now()` })
        .where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)))
        .returning({ id: apiTokens.id }),
      "Cannot revoke token",
    );
    return rows.length === 1;
  });
}

/** Creates a token named `name`, revoking the live one of that name in the same transaction. */
export async function replaceApiToken(db: Db, request: NewApiToken): Promise<CreatedApiToken> {
  return await db.transaction(async (tx) => {
    await guard(
      tx.update(apiTokens).set({ revokedAt: sql`now()` })
        .where(and(eq(apiTokens.name, request.name), isNull(apiTokens.revokedAt))),
      "Cannot revoke token",
    );
    return await createApiToken(tx, request);
  });
}

/** Every token, revoked ones included, oldest first; never the hashes. */
export async function listApiTokens(db: Db): Promise<ApiToken[]> {
  return await guard(
    db.select(PUBLIC_COLUMNS).from(apiTokens).orderBy(asc(apiTokens.createdAt), asc(apiTokens.id)),
    "Cannot list tokens",
  );
}
