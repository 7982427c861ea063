/** Parsing a policy from YAML text or a plain object, reporting every problem with its place. */
import { isMap, isNode, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type { z } from "zod";
import { sha256 } from "@noble/hashes/sha2";
import { toHex } from "../srup/mod.ts";
import { formatPath, PolicyError, type PolicyIssue } from "./errors.ts";
import { type Policy, policySchema } from "./schema.ts";

/** Largest policy text accepted: policies are small, and a huge one is a mistake or an attack. */
export const MAX_POLICY_BYTES = 1 << 20;

/** Where a policy came from, recorded by every rollout that uses it. */
export interface PolicyProvenance {
  /** The file path, or `inline`. */
  source: string;
  /** Lowercase hex SHA-256 of the policy's text (of its canonical JSON for an inline object). */
  sha256: string;
  /** The last git commit that touched the file, or null (no git, not in a repository, untracked). */
  commit: string | null;
  /** Whether the file differs from that commit; null when `commit` is null. */
  dirty: boolean | null;
}

/** A validated policy with its provenance. */
export interface LoadedPolicy {
  policy: Policy;
  provenance: PolicyProvenance;
}

/** Options of {@linkcode parsePolicy} and {@linkcode validatePolicy}. */
export interface ParseOptions {
  /** Named in errors and provenance; default `inline`. */
  source?: string;
}

/** Parses and validates YAML policy text; throws PolicyError listing every problem with its line. */
export function parsePolicy(text: string, options: ParseOptions = {}): LoadedPolicy {
  const source = options.source ?? "inline";
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > MAX_POLICY_BYTES) {
    throw new PolicyError([{
      source,
      path: "",
      line: null,
      message: `Policy is ${bytes.length} bytes: the limit is ${MAX_POLICY_BYTES}`,
    }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  if (doc.errors.length > 0) {
    throw new PolicyError(doc.errors.map((error) => ({
      source,
      path: "",
      line: lineOf(error.pos[0]),
      message: `YAML: ${error.message}`,
    })));
  }
  if (!isMap(doc.contents)) {
    throw new PolicyError([{
      source,
      path: "",
      line: doc.contents?.range ? lineOf(doc.contents.range[0]) : 1,
      message: "A policy must be a YAML mapping of keys to values",
    }]);
  }
  const result = policySchema.safeParse(doc.toJS());
  if (!result.success) {
    const issues = toIssues(result.error.issues, source, (path) => {
      const offset = offsetOf(doc.contents as Node, path);
      return offset === null ? null : lineOf(offset);
    });
    // In file order, as an editor or a CI log would list them.
    throw new PolicyError(issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
  }
  return { policy: result.data, provenance: provenance(source, bytes) };
}

/** Validates a plain object (an inline policy sent to the API) with the same schema and errors. */
export function validatePolicy(value: unknown, options: ParseOptions = {}): LoadedPolicy {
  const source = options.source ?? "inline";
  const result = policySchema.safeParse(value);
  if (!result.success) {
    // Refinements (custom issues) are the rules between values; the rest is each value's form.
    throw new PolicyError(toIssues(result.error.issues, source, () => null), {
      inconsistent: result.error.issues.every((issue) => issue.code === "custom"),
    });
  }
  const canonical = JSON.stringify(sortKeys(value));
  return {
    policy: result.data,
    provenance: provenance(source, new TextEncoder().encode(canonical)),
  };
}

function provenance(source: string, bytes: Uint8Array): PolicyProvenance {
  return { source, sha256: toHex(sha256(bytes)), commit: null, dirty: null };
}

/** zod issues as policy issues; an unknown-keys issue becomes one issue per key, placed at the key. */
function toIssues(
  issues: readonly z.core.$ZodIssue[],
  source: string,
  lineOf: (path: readonly PropertyKey[]) => number | null,
): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        out.push({ source, path: formatPath(path), line: lineOf(path), message: "Unknown key" });
      }
      continue;
    }
    out.push({
      source,
      path: formatPath(issue.path),
      line: lineOf(issue.path),
      message: issue.message,
    });
  }
  return out;
}

/** Offset of the node at `path` (of the key, for a map entry), or of its nearest existing parent. */
function offsetOf(root: Node, path: readonly PropertyKey[]): number | null {
  let node: unknown = root;
  let offset = root.range?.[0] ?? null;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && item.key.value === key);
      if (!pair) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof key === "number") {
      node = node.items[key];
      if (!isNode(node)) break;
      offset = node.range?.[0] ?? offset;
    } else {
      break;
    }
  }
  return offset;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : 1
  );
  return Object.fromEntries(entries.map(([key, item]) => [key, sortKeys(item)]));
}
