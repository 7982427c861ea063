/** /v1/policies: the loaded policies with provenance, and the files that failed to load. */
import { createRoute, z } from "@hono/zod-openapi";
import { stringify } from "yaml";
import type { LoadedPolicy } from "../../policies/mod.ts";
import type { PolicyRegistry } from "../../orchestrator/policy_registry.ts";
import { requireRole } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { AUTH_ERRORS, jsonResponse, newApp, NOT_FOUND } from "../openapi.ts";

const PolicySchema = z.object({
  name: z.string(),
  source: z.string(),
  sha256: z.string(),
  commit: z.string().nullable(),
  dirty: z.boolean().nullable(),
  policy: z.record(z.string(), z.unknown()),
  /** The file's text as loaded; the parsed policy as YAML when the file has changed since. */
  yaml: z.string(),
}).openapi("Policy");

const IssueSchema = z.object({
  source: z.string(),
  path: z.string(),
  line: z.number().nullable(),
  message: z.string(),
});

const ListSchema = z.object({
  items: z.array(PolicySchema),
  failures: z.array(z.object({ source: z.string(), issues: z.array(IssueSchema) })),
});

/** The text the policy was loaded from, if the file still holds it; else the policy as YAML. */
async function policyYaml(loaded: LoadedPolicy): Promise<string> {
  try {
    const text = await Deno.readTextFile(loaded.provenance.source);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    if (new Uint8Array(digest).toHex() === loaded.provenance.sha256) return text;
  } catch {
    // Gone or unreadable since it was loaded: the parsed policy says the same.
  }
  return stringify(loaded.policy);
}

async function policyJson(loaded: LoadedPolicy) {
  return {
    name: loaded.policy.name,
    source: loaded.provenance.source,
    sha256: loaded.provenance.sha256,
    commit: loaded.provenance.commit,
    dirty: loaded.provenance.dirty,
    policy: loaded.policy as unknown as Record<string, unknown>,
    yaml: await policyYaml(loaded),
  };
}

/** The policies sub-app. */
export function policiesApp(registry: PolicyRegistry) {
  const list = async () => ({
    items: await Promise.all(registry.list().map(policyJson)),
    failures: registry.failures.map((f) => ({ source: f.source, issues: [...f.issues] })),
  });
  return newApp()
    .openapi(
      createRoute({
        method: "get",
        path: "/",
        summary: "Loaded policies with their hash and commit, and files that failed to load",
        responses: { 200: jsonResponse(ListSchema, "Policies"), ...AUTH_ERRORS },
      }),
      async (c) => c.json(await list(), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/reload",
        summary: "Reload the policy directory",
        middleware: [requireRole("operator")] as const,
        responses: { 200: jsonResponse(ListSchema, "Policies after the reload"), ...AUTH_ERRORS },
      }),
      async (c) => {
        await registry.load();
        return c.json(await list(), 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/{name}",
        summary: "One policy",
        request: {
          params: z.object({
            name: z.string().max(128).openapi({ param: { name: "name", in: "path" } }),
          }),
        },
        responses: { 200: jsonResponse(PolicySchema, "The policy"), ...AUTH_ERRORS, ...NOT_FOUND },
      }),
      async (c) => {
        const { name } = c.req.valid("param");
        const loaded = registry.get(name);
        if (!loaded) throw new ApiError(404, "not_found", `No policy "${name}"`);
        return c.json(await policyJson(loaded), 200);
      },
    );
}
