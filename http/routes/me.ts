/** /v1/me (who the caller is) and /v1/states (the state words): what a client needs to render. */
import { createRoute, z } from "@hono/zod-openapi";
import { TOKEN_ROLES } from "../../db/mod.ts";
import { AUTH_ERRORS, jsonResponse, newApp } from "../openapi.ts";
import { CLIENT_VOCABULARY } from "../vocabulary.ts";

/** The /v1/me and /v1/states sub-app. */
export function meApp() {
  return newApp()
    .openapi(
      createRoute({
        method: "get",
        path: "/me",
        operationId: "getCaller",
        tags: ["server"],
        summary: "The caller's token: its name and role, so a client shows only what it may do",
        description: "The id, name and role of the token the request carries.",
        responses: {
          200: jsonResponse(
            z.object({ id: z.string(), name: z.string(), role: z.enum(TOKEN_ROLES) }),
            "The caller",
          ),
          ...AUTH_ERRORS,
        },
      }),
      (c) => c.json(c.get("caller"), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/states",
        operationId: "getStates",
        tags: ["server"],
        description:
          "The words clients render states and SRUP statuses with, so no client keeps its own copy.",
        summary:
          "The vocabulary: every device and rollout state in order, which are active and final, and the SRUP status bytes",
        responses: {
          200: jsonResponse(
            z.object({
              deviceStates: z.array(z.string()).readonly(),
              rolloutStates: z.array(z.string()).readonly(),
              activeRolloutStates: z.array(z.string()).readonly(),
              finalRolloutStates: z.array(z.string()).readonly(),
              finalDeviceStates: z.array(z.string()).readonly(),
              waitReasons: z.array(z.string()).readonly().openapi({
                description:
                  "Why a device of a running rollout waits beyond its state (waiting_window: its maintenance window is closed)",
              }),
              statuses: z.array(z.object({ code: z.number(), name: z.string(), text: z.string() })),
            }),
            "The vocabulary",
          ),
          ...AUTH_ERRORS,
        },
      }),
      (c) => c.json(CLIENT_VOCABULARY, 200),
    );
}
