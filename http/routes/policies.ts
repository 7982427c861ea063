/** /v1/policies: the loaded policies with provenance, and the files that failed to load. */
import { createRoute, z } from "@hono/zod-openapi";
import { stringify } from "yaml";
import { type LoadedPolicy, policySchema } from "../../policies/mod.ts";
import type { PolicyRegistry } from "../../orchestrator/policy_registry.ts";
import { requireRole } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { AUTH_ERRORS, jsonResponse, newApp, NOT_FOUND } from "../openapi.ts";

// What a policy file may hold, as JSON Schema. The rules between values (stages increasing and
// ending at 100, limits against each other) are beyond JSON Schema: breaking them is a 422.
const { $schema: _, ...POLICY_JSON_SCHEMA } = z.toJSONSchema(policySchema, {
  io: "input",
  unrepresentable: "any",
});

/** An inline policy: documented with the policy files' schema, checked by the policy loader. */
export const InlinePolicy = z.record(z.string(), z.unknown()).openapi(
  "InlinePolicy",
  {
    ...POLICY_JSON_SCHEMA,
    description:
      "A policy as a policy file would hold it (docs/policies.md). Its stages must increase and end at 100, maxBackoff be at least backoff, an exponential rate's max at least its base, durations more than 0 and at most 24d (a maintenance window's at most 7d), windows.by and windows.groups go together, windows without by needs open, and a maintenance window's start a 5-field cron that fires and its timeZone an IANA name: a policy that breaks only these rules is refused with 422 inconsistent_policy.",
  } as Record<string, unknown>,
);

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
        operationId: "listPolicies",
        tags: ["policies"],
        summary: "Loaded policies with their hash and commit, and files that failed to load",
        description:
          "Every policy loaded from FLOTILLA_POLICY_DIR, with its file, content hash and git commit, and each file that failed to load with all its problems.",
        responses: { 200: jsonResponse(ListSchema, "Policies"), ...AUTH_ERRORS },
      }),
      async (c) => c.json(await list(), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/reload",
        operationId: "reloadPolicies",
        tags: ["policies"],
        summary: "Reload the policy directory",
        description:
          "Reads FLOTILLA_POLICY_DIR again; running rollouts keep the policy they started with.",
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
        operationId: "getPolicy",
        tags: ["policies"],
        summary: "One policy",
        description: "The policy with defaults filled in, and the text it was loaded from.",
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
