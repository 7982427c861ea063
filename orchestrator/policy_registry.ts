/** The policies the service knows: every file of the policy directory, loaded or with its errors. */
import {
  type LoadedPolicy,
  loadPolicyDir,
  type PolicyIssue,
  type PolicyLoadResult,
} from "../policies/mod.ts";

/** One file that failed to load. */
export interface PolicyFailure {
  source: string;
  issues: readonly PolicyIssue[];
}

/** Policies by name, from one directory. */
export class PolicyRegistry {
  readonly #dir: string;
  #byName = new Map<string, LoadedPolicy>();
  #failures: PolicyFailure[] = [];

  constructor(dir: string) {
    this.#dir = dir;
  }

  get dir(): string {
    return this.#dir;
  }

  /** (Re)loads the directory; one bad file never stops the others. A missing directory is empty. */
  async load(): Promise<void> {
    const byName = new Map<string, LoadedPolicy>();
    const failures: PolicyFailure[] = [];
    let results: PolicyLoadResult[];
    try {
      results = await loadPolicyDir(this.#dir);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      results = [];
    }
    for (const result of results) {
      if (!result.ok) {
        failures.push({ source: result.source, issues: result.issues });
        continue;
      }
      const name = result.loaded.policy.name;
      const taken = byName.get(name);
      if (taken) {
        failures.push({
          source: result.source,
          issues: [{
            source: result.source,
            path: "name",
            line: null,
            message: `Policy name "${name}" is already used by ${taken.provenance.source}`,
          }],
        });
        continue;
      }
      byName.set(name, result.loaded);
    }
    this.#byName = byName;
    this.#failures = failures;
  }

  get(name: string): LoadedPolicy | undefined {
    return this.#byName.get(name);
  }

  list(): LoadedPolicy[] {
    return [...this.#byName.values()];
  }

  get failures(): readonly PolicyFailure[] {
    return this.#failures;
  }
}
