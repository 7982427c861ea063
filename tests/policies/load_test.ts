import assert from "node:assert/strict";
import { join } from "node:path";
import {
  formatIssue,
  gitProvenance,
  loadPolicyDir,
  loadPolicyFile,
  PolicyError,
} from "../../policies/mod.ts";

const GOOD = "name: good\nstages:\n  - percent: 100\n";

async function git(cwd: string, ...args: string[]): Promise<string> {
  const output = await new Deno.Command("git", {
    args: ["-c", "user.name=test", "-c", "user.email=test@example.com", ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout).trim();
}

Deno.test("loadPolicyDir() loads every file on its own: one bad file never stops the rest", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "a.yaml"), GOOD);
    await Deno.writeTextFile(join(dir, "b.yml"), "name: b\nstages:\n  - percent: 50\n");
    await Deno.writeTextFile(join(dir, "c.yaml"), GOOD.replace("good", "c"));
    await Deno.writeTextFile(join(dir, "notes.txt"), "not a policy");
    const results = await loadPolicyDir(dir);
    assert.deepEqual(results.map((r) => [r.source.slice(dir.length + 1), r.ok]), [
      ["a.yaml", true],
      ["b.yml", false],
      ["c.yaml", true],
    ]);
    const bad = results[1]!;
    assert.ok(!bad.ok);
    assert.deepEqual(bad.issues.map(formatIssue), [
      `${join(dir, "b.yml")}:3: stages[0].percent: The last stage must be 100: got 50`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPolicyFile() reports unreadable, missing and non-UTF-8 files as policy errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = join(dir, "missing.yaml");
    await assert.rejects(() => loadPolicyFile(missing), (error: unknown) => {
      assert.ok(error instanceof PolicyError);
      assert.match(formatIssue(error.issues[0]!), /missing\.yaml: Cannot read file: /);
      return true;
    });
    const binary = join(dir, "binary.yaml");
    await Deno.writeFile(binary, new Uint8Array([0x6e, 0xff, 0xfe, 0x0a]));
    await assert.rejects(() => loadPolicyFile(binary), /File is not UTF-8 text/);
    await assert.rejects(() => loadPolicyFile(dir), /Not a file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a policy in a git repository carries its last commit and whether it changed since", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "canary.yaml");
    await t.step("outside a repository: no commit", async () => {
      await Deno.writeTextFile(file, GOOD);
      assert.equal(await gitProvenance(file), null);
      const { provenance } = await loadPolicyFile(file);
      assert.equal(provenance.commit, null);
      assert.equal(provenance.dirty, null);
    });
    await git(dir, "init", "-q");
    await t.step("untracked: no commit", async () => {
      assert.equal((await loadPolicyFile(file)).provenance.commit, null);
    });
    await git(dir, "add", "canary.yaml");
    await git(dir, "commit", "-q", "-m", "policy");
    const commit = await git(dir, "rev-parse", "HEAD");
    await t.step("committed: the commit id, clean", async () => {
      const { provenance } = await loadPolicyFile(file);
      assert.equal(provenance.commit, commit);
      assert.equal(provenance.dirty, false);
      assert.equal(provenance.source, file);
      assert.match(provenance.sha256, /^[0-9a-f]{64}$/);
    });
    await t.step("edited since: the same commit, dirty", async () => {
      await Deno.writeTextFile(file, GOOD.replace("good", "edited"));
      const { provenance } = await loadPolicyFile(file);
      assert.equal(provenance.commit, commit);
      assert.equal(provenance.dirty, true);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
