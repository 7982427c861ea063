/** Loading policy files from disk, with git provenance. */
import { basename, dirname, join } from "node:path";
import { PolicyError, type PolicyIssue } from "./errors.ts";
import { type LoadedPolicy, MAX_POLICY_BYTES, parsePolicy } from "./parse.ts";

/** The outcome of loading one file of a directory: the policy, or every problem found in it. */
export type PolicyLoadResult =
  | { ok: true; source: string; loaded: LoadedPolicy }
  | { ok: false; source: string; issues: readonly PolicyIssue[] };

/** Loads and validates one policy file; throws PolicyError (unreadable file included). */
export async function loadPolicyFile(path: string): Promise<LoadedPolicy> {
  const loaded = parsePolicy(await readPolicyText(path), { source: path });
  const git = await gitProvenance(path);
  if (git) Object.assign(loaded.provenance, git);
  return loaded;
}

/** Loads every `*.yaml` and `*.yml` file of `dir`, sorted by name; one bad file never stops the rest. */
export async function loadPolicyDir(dir: string): Promise<PolicyLoadResult[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /\.ya?ml$/.test(entry.name)) names.push(entry.name);
  }
  names.sort();
  const results: PolicyLoadResult[] = [];
  for (const name of names) results.push(await loadPolicyResult(join(dir, name)));
  return results;
}

/** Loads one file as a {@linkcode PolicyLoadResult}, never throwing a PolicyError. */
export async function loadPolicyResult(path: string): Promise<PolicyLoadResult> {
  try {
    return { ok: true, source: path, loaded: await loadPolicyFile(path) };
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    return { ok: false, source: path, issues: error.issues };
  }
}

async function readPolicyText(path: string): Promise<string> {
  const fail = (message: string, cause?: unknown): never => {
    throw new PolicyError([{ source: path, path: "", line: null, message }], { cause });
  };
  let bytes: Uint8Array | undefined;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) fail("Not a file");
    if (info.size > MAX_POLICY_BYTES) {
      fail(`Policy is ${info.size} bytes: the limit is ${MAX_POLICY_BYTES}`);
    }
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof PolicyError) throw error;
    fail(`Cannot read file: ${(error as Error).message}`, error);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    return fail("File is not UTF-8 text", error);
  }
}

/** The last commit that touched `path` and whether the file differs from it; null without git. */
export async function gitProvenance(
  path: string,
): Promise<{ commit: string; dirty: boolean } | null> {
  const log = await git(dirname(path), ["log", "-1", "--format=%H", "--", basename(path)]);
  const commit = log?.trim();
  if (!commit || !/^[0-9a-f]{40,64}$/.test(commit)) return null;
  const status = await git(dirname(path), ["status", "--porcelain", "--", basename(path)]);
  return { commit, dirty: status === null || status.trim() !== "" };
}

async function git(cwd: string, args: string[]): Promise<string | null> {
  try {
    const output = await new Deno.Command("git", {
      args,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return output.success ? new TextDecoder().decode(output.stdout) : null;
  } catch {
    // No git binary (or no permission to run it): provenance is simply unknown.
    return null;
  }
}
