/** Artifacts: uploaded files and files hosted elsewhere, keyed by SHA-256 digest. */
import { asc, desc, eq, gt, inArray } from "drizzle-orm";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { type Page, pageLimit } from "./page.ts";
import { artifacts, rollouts } from "./schema.ts";

/** An artifact row. */
export type Artifact = typeof artifacts.$inferSelect;

/** What recording an artifact takes: exactly one of `url` (external) and `path` (uploaded). */
export type NewArtifact = Omit<typeof artifacts.$inferInsert, "createdAt">;

/**
 * Records an artifact and returns the stored row. The first record of a digest wins: the same
 * digest means the same bytes, so a repeat upload or registration returns the existing row.
 */
export async function putArtifact(db: Db, artifact: NewArtifact): Promise<Artifact> {
  const [created] = await guard(
    db.insert(artifacts).values(artifact).onConflictDoNothing().returning(),
    "Cannot record artifact",
  );
  if (created) return created;
  const existing = await getArtifact(db, artifact.digest);
  // Only a concurrent delete could take it away between the two statements; there is no delete.
  return existing!;
}

/** [SRUP-7] Sets an artifact's signed manifest (base64); the updated row, or undefined if none. */
export async function setArtifactManifest(
  db: Db,
  digest: string,
  manifest: string,
): Promise<Artifact | undefined> {
  const [row] = await guard(
    db.update(artifacts).set({ manifest }).where(eq(artifacts.digest, digest)).returning(),
    "Cannot set artifact manifest",
  );
  return row;
}

/** The URL devices fetch an artifact from: its own, or this service's download route. */
export function artifactUrl(artifact: Artifact, publicUrl: string): string {
  return artifact.url ?? `${publicUrl}/artifacts/${artifact.digest}`;
}

/** The artifact with this digest, or undefined. */
export async function getArtifact(db: Db, digest: string): Promise<Artifact | undefined> {
  const [row] = await guard(
    db.select().from(artifacts).where(eq(artifacts.digest, digest)),
    "Cannot get artifact",
  );
  return row;
}

/** Options for {@linkcode listArtifacts}. */
export interface ListArtifactsOptions {
  /** The `nextCursor` of the previous page. */
  cursor?: string;
  /** Page size, 1 to 1000; default 100. */
  limit?: number;
}

/** Artifacts in digest order. */
export async function listArtifacts(
  db: Db,
  options: ListArtifactsOptions = {},
): Promise<Page<Artifact>> {
  const limit = pageLimit(options.limit);
  const rows = await guard(
    db.select().from(artifacts)
      .where(options.cursor === undefined ? undefined : gt(artifacts.digest, options.cursor))
      .orderBy(asc(artifacts.digest))
      .limit(limit + 1),
    "Cannot list artifacts",
  );
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? items.at(-1)!.digest : null };
}

/** A rollout that uses an artifact. */
export interface ArtifactUse {
  id: string;
  name: string | null;
  state: string;
}

// The newest few are enough to show; the rollouts list filters by nothing finer.
const USES_SHOWN = 20;

/** The newest rollouts using each of these artifacts, newest first, by digest. */
export async function artifactUses(
  db: Db,
  digests: readonly string[],
): Promise<Map<string, ArtifactUse[]>> {
  const uses = new Map<string, ArtifactUse[]>(digests.map((digest) => [digest, []]));
  if (digests.length === 0) return uses;
  const rows = await guard(
    db.select({
      digest: rollouts.artifactDigest,
      id: rollouts.id,
      name: rollouts.name,
      state: rollouts.state,
    }).from(rollouts)
      .where(inArray(rollouts.artifactDigest, [...digests]))
      .orderBy(desc(rollouts.createdAt), desc(rollouts.id)),
    "Cannot list artifact uses",
  );
  for (const { digest, ...use } of rows) {
    // Rows matched a digest given, so none is a rollback (which has no artifact).
    const list = uses.get(digest!)!;
    if (list.length < USES_SHOWN) list.push(use);
  }
  return uses;
}

/** Name and version of each of these artifacts that has them, by digest. */
export async function artifactLabels(
  db: Db,
  digests: readonly string[],
): Promise<Map<string, { name: string | null; version: string | null }>> {
  if (digests.length === 0) return new Map();
  const rows = await guard(
    db.select({ digest: artifacts.digest, name: artifacts.name, version: artifacts.version })
      .from(artifacts).where(inArray(artifacts.digest, [...new Set(digests)])),
    "Cannot get artifact names",
  );
  return new Map(rows.map(({ digest, ...label }) => [digest, label]));
}
