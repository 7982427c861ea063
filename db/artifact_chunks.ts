/** Artifact bytes kept in the database (FLOTILLA_ARTIFACT_STORE=db): pieces written, ranges read. */
import { and, count, eq, isNotNull, sql } from "drizzle-orm";
import { Buffer } from "node:buffer";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { artifactChunks, artifacts } from "./schema.ts";

/** Writes one piece of a blob: the bytes from offset `start` of the file. */
export async function writeChunk(
  db: Db,
  blob: string,
  start: number,
  data: Uint8Array,
): Promise<void> {
  // postgres.js sends a Buffer as bytea; a plain Uint8Array it would take for an array. No copy.
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  await guard(
    db.insert(artifactChunks).values({ blob, start, data: bytes }),
    "Cannot store artifact bytes",
  );
}

/** Deletes every piece of a blob. */
export async function deleteChunks(db: Db, blob: string): Promise<void> {
  await guard(
    db.delete(artifactChunks).where(eq(artifactChunks.blob, blob)),
    "Cannot delete artifact bytes",
  );
}

/** How many pieces a blob has. */
export async function countChunks(db: Db, blob: string): Promise<number> {
  const [row] = await guard(
    db.select({ n: count() }).from(artifactChunks).where(eq(artifactChunks.blob, blob)),
    "Cannot count artifact bytes",
  );
  return row?.n ?? 0;
}

/**
 * Up to `max` bytes of a blob from offset `at`, never past the end of the piece holding `at`;
 * empty past the end of the blob. Only the bytes asked for leave the database.
 */
export async function readChunk(
  db: Db,
  blob: string,
  at: number,
  max: number,
): Promise<Uint8Array> {
  const from = sql`(${at}::bigint - ${artifactChunks.start} + 1)::integer`;
  const [row] = await guard(
    db.select({ data: sql<Uint8Array>`substring(${artifactChunks.data} from ${from} for ${max})` })
      .from(artifactChunks)
      .where(and(eq(artifactChunks.blob, blob), sql`${artifactChunks.start} <= ${at}`))
      .orderBy(sql`${artifactChunks.start} desc`)
      .limit(1),
    "Cannot read artifact bytes",
  );
  return row?.data ?? new Uint8Array(0);
}

/** An artifact whose bytes are in the database. */
export interface StoredBlob {
  digest: string;
  size: number;
  blob: string;
}

/** The artifact with this digest if its bytes are in the database, else undefined. */
export async function getStoredBlob(db: Db, digest: string): Promise<StoredBlob | undefined> {
  const [row] = await guard(
    db.select({ digest: artifacts.digest, size: artifacts.size, blob: artifacts.blob })
      .from(artifacts)
      .where(and(eq(artifacts.digest, digest), isNotNull(artifacts.blob))),
    "Cannot get artifact",
  );
  return row ? { digest: row.digest, size: row.size ?? 0, blob: row.blob! } : undefined;
}
