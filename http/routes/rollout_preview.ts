/** POST /v1/rollouts/preview: what a rollout would select and stage, before it is created. */
import { createRoute, z } from "@hono/zod-openapi";
import type { PolicyRegistry } from "../../orchestrator/policy_registry.ts";
import type { Db } from "../../db/mod.ts";
import { previewRollout, RolloutRefusedError } from "../../orchestrator/create_rollout.ts";
import { ApiError } from "../errors.ts";
import { AUTH_ERRORS, errorContent, jsonBody, jsonResponse, newApp } from "../openapi.ts";
import { PreviewRequestSchema } from "./rollouts.ts";

const PreviewSchema = z.object({
  devices: z.number(),
  stages: z.array(z.object({ percent: z.number(), devices: z.number() })),
  policy: z.object({ name: z.string(), sha256: z.string(), commit: z.string().nullable() }),
  windows: z.object({
    by: z.string(),
    groups: z.array(z.object({
      group: z.string().nullable().openapi({
        description: "The tag value; null for the policy's windows.open (the fallback)",
      }),
      devices: z.number().int(),
    })),
    unmatched: z.array(z.object({ value: z.string().nullable(), devices: z.number().int() }))
      .openapi({
        description:
          "Devices per tag value (null: no such tag) with no window: creating would answer 422 no_window",
      }),
  }).nullable().openapi({
    description: "With maintenance windows by tag value: the devices per window group; else null",
  }),
}).openapi("RolloutPreview");

/** The preview sub-app, mounted beside the rollouts. */
export function rolloutPreviewApp(deps: { db: Db; policies: PolicyRegistry }) {
  return newApp().openapi(
    createRoute({
      method: "post",
      path: "/preview",
      operationId: "previewRollout",
      tags: ["rollouts"],
      summary: "Preview a rollout: how many devices the targets select and each stage's size",
      description: "Creates nothing. A viewer may preview.",
      request: {
        body: jsonBody(
          PreviewRequestSchema.openapi("RolloutPreviewRequest", {
            example: {
              policy: { name: "example", stages: [{ percent: 50 }, { percent: 100 }] },
              targets: { all: true },
            },
          }),
        ),
      },
      responses: {
        200: jsonResponse(PreviewSchema, "What the rollout would be"),
        ...AUTH_ERRORS,
        422: errorContent(
          "Unknown policy, or an inline policy whose rules contradict each other (inconsistent_policy)",
        ),
      },
    }),
    async (c) => {
      try {
        const preview = await previewRollout(deps, c.req.valid("json"));
        const { policy, provenance } = preview.policy;
        return c.json({
          devices: preview.devices,
          stages: preview.stages,
          policy: { name: policy.name, sha256: provenance.sha256, commit: provenance.commit },
          windows: preview.windows,
        }, 200);
      } catch (error) {
        if (!(error instanceof RolloutRefusedError)) throw error;
        throw new ApiError(error.code === "invalid_policy" ? 400 : 422, error.code, error.message, {
          details: error.details,
        });
      }
    },
  );
}
