/** `flotilla policy`: check policy files (for CI) and show a policy with its defaults. */
import {
  formatIssue,
  loadPolicyDir,
  loadPolicyResult,
  type PolicyLoadResult,
} from "../policies/mod.ts";
import { dispatch, parse, printJson, UsageError } from "./args.ts";

export const HELP = `Usage: flotilla policy <command>

Commands:
  check [PATH...]   Check policy files (a directory means its *.yaml and *.yml; default policies/).
                    Prints every error as FILE:LINE: PATH: MESSAGE; exits 1 if any file is bad.
  show FILE         Print the validated policy, defaults filled in, with its provenance (JSON)`;

/** Runs `policy` with its arguments; returns the exit code. */
export function run(args: string[]): Promise<number> {
  return dispatch("policy", HELP, { check, show }, args);
}

async function check(args: string[]): Promise<number> {
  const { positionals } = parse(args, {}, true);
  const paths = positionals.length > 0 ? positionals : ["policies"];
  const results: PolicyLoadResult[] = [];
  for (const path of paths) results.push(...await load(path));
  let bad = 0;
  for (const result of results) {
    if (result.ok) {
      const { policy, provenance } = result.loaded;
      console.log(`OK ${result.source} (${policy.name}, sha256 ${provenance.sha256.slice(0, 12)})`);
    } else {
      bad++;
      for (const issue of result.issues) console.error(formatIssue(issue));
    }
  }
  if (results.length === 0) console.error(`No policy files found in ${paths.join(", ")}`);
  return bad > 0 || results.length === 0 ? 1 : 0;
}

async function load(path: string): Promise<PolicyLoadResult[]> {
  let isDirectory = false;
  try {
    isDirectory = (await Deno.stat(path)).isDirectory;
  } catch {
    // Missing paths are reported by the loader, with the file name.
  }
  return isDirectory ? await loadPolicyDir(path) : [await loadPolicyResult(path)];
}

async function show(args: string[]): Promise<number> {
  const { positionals } = parse(args, {}, true);
  if (positionals.length !== 1) throw new UsageError("policy show takes one FILE");
  const result = await loadPolicyResult(positionals[0]!);
  if (!result.ok) {
    for (const issue of result.issues) console.error(formatIssue(issue));
    return 1;
  }
  printJson(result.loaded);
  return 0;
}
