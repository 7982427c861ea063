/** Policy errors: every problem found in one policy, each with its file, path and line. */

/** One problem in a policy. */
export interface PolicyIssue {
  /** The file (or `inline`) the policy came from. */
  source: string;
  /** Where inside the policy, such as `stages[2].percent`; empty for the whole policy. */
  path: string;
  /** 1-based line in the file, or null when the policy has no text (an inline object). */
  line: number | null;
  message: string;
}

/** A policy that cannot be used; `issues` lists every problem found, not just the first. */
export class PolicyError extends Error {
  readonly issues: readonly PolicyIssue[];
  /**
   * Every value has the right type and form, but they break the policy's rules: stages not
   * increasing or not ending at 100, a limit below another, a duration of 0 or over 24 days.
   */
  readonly inconsistent: boolean;

  constructor(
    issues: readonly PolicyIssue[],
    options?: ErrorOptions & { inconsistent?: boolean },
  ) {
    const first = issues[0];
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
    super(`Invalid policy: ${first ? formatIssue(first) : "unknown problem"}${more}`, options);
    this.name = "PolicyError";
    this.issues = issues;
    this.inconsistent = options?.inconsistent ?? false;
  }
}

/** One issue as `file:line: path: message`, the form editors and CI logs link to. */
export function formatIssue(issue: PolicyIssue): string {
  const where = issue.line === null ? issue.source : `${issue.source}:${issue.line}`;
  return issue.path === ""
    ? `${where}: ${issue.message}`
    : `${where}: ${issue.path}: ${issue.message}`;
}

/** A zod-style path as text: `["stages", 2, "percent"]` → `stages[2].percent`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`;
    else text += text === "" ? String(key) : `.${String(key)}`;
  }
  return text;
}
