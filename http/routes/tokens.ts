/** /v1/tokens: admins create, list and revoke API tokens. */
import { createRoute, z } from "@hono/zod-openapi";
import {
  type ApiToken,
  createApiToken,
  type Db,
  listApiTokens,
  revokeApiToken,
  TOKEN_ROLES,
} from "../../db/mod.ts";
import { requireRole, type TokenVerifier } from "../auth.ts";
import { ApiError, orConflict } from "../errors.ts";
import {
  AUTH_ERRORS,
  CONFLICT,
  IdParam,
  jsonBody,
  jsonResponse,
  newApp,
  NOT_FOUND,
} from "../openapi.ts";

const TokenSchema = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(TOKEN_ROLES),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
}).openapi("ApiToken");

function tokenJson(token: ApiToken) {
  return {
    id: token.id,
    name: token.name,
    role: token.role,
    createdAt: token.createdAt.toISOString(),
    lastUsedAt: token.lastUsedAt?.toISOString() ?? null,
    revokedAt: token.revokedAt?.toISOString() ?? null,
  };
}

/** The tokens sub-app; every route needs the admin role. */
export function tokensApp(db: Db, verifier: TokenVerifier) {
  const app = newApp();
  app.use("*", requireRole("admin"));
  return app
    .openapi(
      createRoute({
        method: "post",
        path: "/",
        operationId: "createToken",
        tags: ["tokens"],
        summary: "Create a token; its plaintext is shown only in this response",
        description:
          "Creates a named token with a role (viewer reads, operator also writes, admin also manages tokens). Only its hash is stored.",
        request: {
          body: jsonBody(
            z.object({
              name: z.string().regex(/^[\w.@-]{1,64}$/, "name is 1 to 64 of A-Z a-z 0-9 _ . @ -"),
              role: z.enum(TOKEN_ROLES),
            }).strict(),
          ),
        },
        responses: {
          201: jsonResponse(
            TokenSchema.extend({ token: z.string() }),
            "The token and its plaintext",
          ),
          ...AUTH_ERRORS,
          ...CONFLICT,
        },
      }),
      async (c) => {
        const created = await orConflict("token_exists", createApiToken(db, c.req.valid("json")));
        return c.json({ ...tokenJson(created.token), token: created.plaintext }, 201);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/",
        operationId: "listTokens",
        tags: ["tokens"],
        summary: "List tokens (never their plaintext or hash)",
        description: "Every token, revoked ones included, with when it was last used.",
        responses: {
          200: jsonResponse(z.object({ items: z.array(TokenSchema) }), "Tokens"),
          ...AUTH_ERRORS,
        },
      }),
      async (c) => c.json({ items: (await listApiTokens(db)).map(tokenJson) }, 200),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/{id}",
        operationId: "revokeToken",
        tags: ["tokens"],
        summary: "Revoke a token",
        description: "Revokes the token at once; 409 for the last live admin token.",
        request: { params: IdParam },
        responses: { 204: { description: "Revoked" }, ...AUTH_ERRORS, ...NOT_FOUND, ...CONFLICT },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        // The last live admin token stays: without it nobody could manage tokens through the API.
        if (!await orConflict("last_admin", revokeApiToken(db, id))) {
          throw new ApiError(404, "not_found", `No live token "${id}"`);
        }
        verifier.clear();
        return c.body(null, 204);
      },
    );
}
