/**
 * @module
 * Rollout policies: YAML files in git, validated with zod, with provenance (content SHA-256 and
 * git commit). Every key is documented in docs/policies.md.
 */
export { formatDuration, MAX_DURATION_MS, parseDuration } from "./duration.ts";
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
  isTimeZone,
  type MaintenanceWindow,
  MAX_WINDOW_GROUPS,
  MAX_WINDOW_MS,
  ON_CLOSE,
  type Windows,
} from "./windows.ts";
export {
  NO_WINDOW,
  WindowCalendar,
  windowCalendars,
  windowGrouper,
  windowGroupNames,
} from "./window_calendar.ts";
export {
  gitProvenance,
  loadPolicyDir,
  loadPolicyFile,
  loadPolicyResult,
  type PolicyLoadResult,
} from "./load.ts";
