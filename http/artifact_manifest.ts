/** [SRUP-7] A release manifest given with an artifact: its JSON field, and the checks it passes. */
import { z } from "@hono/zod-openapi";
import type { Artifact } from "../db/mod.ts";
import {
  decodeManifest,
  ManifestError,
  MAX_MANIFEST_BYTES,
  type SignedManifest,
  toHex,
  verifyManifest,
} from "../srup/mod.ts";
import { ApiError } from "./errors.ts";

/** Base64 of a signed manifest, as `srup release sign` writes it (at most 1024 bytes). */
export const ManifestField = z.string().max(Math.ceil(MAX_MANIFEST_BYTES / 3) * 4).regex(
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  "manifest must be base64 of the manifest file `srup release sign` wrote",
).min(1).openapi({
  description:
    "Base64 of the signed release manifest `srup release sign` wrote; checked against the artifact's digest and size and, when the server has release keys (FLOTILLA_RELEASE_KEYS), their signatures",
});

/** What the API shows of an artifact's manifest. */
export const ReleaseSchema = z.object({
  name: z.string(),
  version: z.string(),
  securityVersion: z.number().int(),
  digest: z.string(),
  size: z.number().int(),
  hardware: z.array(z.string()),
  expiresAt: z.string().nullable(),
  rollbackRange: z.object({ from: z.number().int(), to: z.number().int() }).nullable().openapi({
    description:
      "[SRUP-7.6] A signed rollback release: it installs on devices running a security version in this range (inclusive), though its own is lower; null for an ordinary release",
  }),
  manifest: z.string().openapi({ description: "Base64 of the signed manifest" }),
}).openapi("Release");

/** The JSON of a stored manifest (base64), or null. */
export function releaseJson(manifest: string | null): z.infer<typeof ReleaseSchema> | null {
  if (manifest === null) return null;
  return { ...manifestToJson(decodeManifest(Uint8Array.fromBase64(manifest))), manifest };
}

/**
 * Checks a manifest given for an artifact: it decodes, names the artifact's digest (and size, when
 * known), and one of `releaseKeys` signed it when any is configured. 422 `invalid_manifest` if not.
 */
export async function checkManifest(
  base64: string,
  artifact: Pick<Artifact, "digest" | "size">,
  releaseKeys: readonly Uint8Array[],
): Promise<string> {
  let manifest;
  try {
    manifest = decodeManifest(Uint8Array.fromBase64(base64));
  } catch (error) {
    if (!(error instanceof ManifestError || error instanceof SyntaxError)) throw error;
    throw invalid(error.message);
  }
  if (toHex(manifest.digest) !== artifact.digest) {
    throw invalid(`it names digest "${toHex(manifest.digest)}", not "${artifact.digest}"`);
  }
  if (artifact.size !== null && manifest.size !== artifact.size) {
    throw invalid(`it names size ${manifest.size}, not ${artifact.size}`);
  }
  if (releaseKeys.length > 0 && !await verifyManifest(manifest, releaseKeys)) {
    throw invalid(
      "no configured release key (FLOTILLA_RELEASE_KEYS, or the last of FLOTILLA_RELEASE_KEY_SETS) signed it",
    );
  }
  return base64;
}

function invalid(why: string): ApiError {
  return new ApiError(422, "invalid_manifest", `Manifest refused: ${why}`);
}

/** A manifest as JSON, as the CLI and the API show it. */
export interface ManifestJson {
  name: string;
  version: string;
  securityVersion: number;
  /** Hex SHA-256. */
  digest: string;
  size: number;
  hardware: string[];
  /** ISO 8601, or null for none. */
  expiresAt: string | null;
  /** [SRUP-7.6] The running security versions a rollback release installs on; null for none. */
  rollbackRange: { from: number; to: number } | null;
}

/** The JSON form of a manifest. */
export function manifestToJson(manifest: SignedManifest): ManifestJson {
  return {
    name: manifest.name,
    version: manifest.version,
    securityVersion: manifest.securityVersion,
    digest: toHex(manifest.digest),
    size: manifest.size,
    hardware: manifest.hardware,
    expiresAt: manifest.expiresAt === undefined ? null : new Date(manifest.expiresAt).toISOString(),
    rollbackRange: manifest.rollbackRange ?? null,
  };
}
