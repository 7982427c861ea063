/** Artifacts: uploaded files and files hosted elsewhere, keyed by SHA-256 digest. */
import { asc, eq, gt } from "drizzle-orm";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { type Page, pageLimit } from "./page.ts";
import { artifacts } from "./schema.ts";

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
