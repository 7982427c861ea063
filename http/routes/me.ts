/** /v1/me (who the caller is) and /v1/states (the state words): what a client needs to render. */
import { createRoute, z } from "@hono/zod-openapi";
import { DEVICE_STATES, isFinished } from "../../actors/mod.ts";
import { ACTIVE_ROLLOUT_STATES, ROLLOUT_STATES, TOKEN_ROLES } from "../../db/mod.ts";
import { STATUS_NAMES, STATUS_TEXT } from "../../srup/mod.ts";
import { AUTH_ERRORS, jsonResponse, newApp } from "../openapi.ts";

const FINAL_ROLLOUT_STATES = ROLLOUT_STATES.filter((state) =>
  !(ACTIVE_ROLLOUT_STATES as readonly string[]).includes(state)
);

/** The /v1/me and /v1/states sub-app. */
export function meApp() {
  return newApp()
    .openapi(
      createRoute({
        method: "get",
        path: "/me",
        summary: "The caller's token: its name and role, so a client shows only what it may do",
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
        summary:
          "The state vocabulary: every device and rollout state, in order, and which are final",
        responses: {
          200: jsonResponse(
            z.object({
              device: z.array(z.string()),
              deviceFinal: z.array(z.string()),
              rollout: z.array(z.string()),
              rolloutFinal: z.array(z.string()),
              statuses: z.array(z.object({ code: z.number(), name: z.string(), text: z.string() })),
            }),
            "The states",
          ),
          ...AUTH_ERRORS,
        },
      }),
      (c) =>
        c.json({
          device: [...DEVICE_STATES],
          deviceFinal: DEVICE_STATES.filter(isFinished),
          rollout: [...ROLLOUT_STATES],
          rolloutFinal: FINAL_ROLLOUT_STATES,
          statuses: [...STATUS_NAMES].map(([code, name]) => ({
            code,
            name,
            text: STATUS_TEXT.get(code) ?? name,
          })),
        }, 200),
    );
}
