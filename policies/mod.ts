/**
 * @module
 * Rollout policies: YAML files in git, validated with zod, with provenance (content SHA-256 and
 * git commit). Every key is documented in docs/policies.md.
 */
export { formatDuration, MAX_DURATION_MS, parseDuration } from "./duration.ts";
export { parseStartAt, START_AT, startAtFormIssue } from "./start_at.ts";
export { formatIssue, formatPath, PolicyError, type PolicyIssue } from "./errors.ts";
export {
  type Policy,
  type PolicyInput,
  policySchema,
  RETRYABLE,
  type Retryable,
} from "./schema.ts";
export {
  type LoadedPolicy,
  MAX_POLICY_BYTES,
  type ParseOptions,
  parsePolicy,
  type PolicyProvenance,
  validatePolicy,
} from "./parse.ts";
export {
  gitProvenance,
  loadPolicyDir,
  loadPolicyFile,
  loadPolicyResult,
  type PolicyLoadResult,
} from "./load.ts";
