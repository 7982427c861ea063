/** /v1/artifacts (upload or register) and /artifacts/<sha256> (the download devices fetch). */
import { createRoute, z } from "@hono/zod-openapi";
import {
  type Artifact,
  artifactUrl,
  artifactUses,
  type Db,
  getArtifact,
  isUnavailable,
  listArtifacts,
  putArtifact,
  setArtifactManifest,
  sqlState,
} from "../../db/mod.ts";
import { checkManifest, ManifestField, releaseJson, ReleaseSchema } from "../artifact_manifest.ts";
import {
  type ArtifactStore,
  ArtifactTooLargeError,
  DigestMismatchError,
  EmptyArtifactError,
  isDigest,
  type PutArtifact,
} from "../artifact_store.ts";
import { requireRole } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { Digest, plainText, prose } from "../fields.ts";
import {
  AUTH_ERRORS,
  errorContent,
  invalidRequest,
  jsonBody,
  jsonResponse,
  Limit,
  newApp,
  NOT_FOUND,
  TOO_LARGE,
} from "../openapi.ts";

/** What the artifact routes need. */
export interface ArtifactDeps {
  db: Db;
  store: ArtifactStore;
  /** Base URL devices fetch from, e.g. `http://127.0.0.1:8080`. */
  publicUrl: string;
  /** Largest upload accepted. */
  maxBytes: number;
  /** [SRUP-7] Release public keys a manifest must be signed by; none: any well-formed one. */
  releaseKeys: readonly Uint8Array[];
}

const HOST_NAME = "([A-Za-z0-9-]+\\.)*[A-Za-z0-9-]*[A-Za-z][A-Za-z0-9-]*";
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4 = `(${OCTET}\\.){3}${OCTET}`;
const PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})";

/** Where a file hosted elsewhere is fetched from. */
export const ArtifactUrl = z.url({
  protocol: /^https?$/,
  error: "url must be an http or https URL",
}).max(2048)
  // Said again as a pattern, so the document states it: http or https, a host name (its last
  // label not all digits) or an IPv4 address, a port up to 65535, then anything but spaces.
  .regex(
    new RegExp(`^[Hh][Tt][Tt][Pp][Ss]?://(${HOST_NAME}|${IPV4})(:${PORT})?([/?#]\\S*)?$`),
    "url must be an http or https URL",
  );

/** An artifact's name, e.g. "sensor-firmware". */
export const ArtifactName = plainText("name", 128).min(1);
/** An artifact's version, e.g. "2.1.0". */
export const ArtifactVersion = plainText("version", 64).min(1);
const ReleaseNotes = prose("releaseNotes", 4000);

/** Name, version and release notes of an upload, given as query parameters beside the bytes. */
const UploadQuery = z.object({
  /** The SHA-256 the bytes must have: other bytes are refused and nothing is stored. */
  digest: Digest.optional().openapi({
    description:
      "The SHA-256 (hex) the bytes must have; an upload that differs is refused with 422 digest_mismatch and nothing is stored",
  }),
  name: ArtifactName.optional(),
  version: ArtifactVersion.optional(),
  releaseNotes: ReleaseNotes.optional(),
  manifest: ManifestField.optional(),
}).strict();

const ArtifactUseSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  state: z.string(),
});

const ArtifactSchema = z.object({
  digest: z.string().openapi({
    example: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  }),
  size: z.number().nullable(),
  url: z.string(),
  stored: z.boolean(),
  name: z.string().nullable(),
  version: z.string().nullable(),
  releaseNotes: z.string().nullable(),
  release: ReleaseSchema.nullable().openapi({
    description: "The signed release manifest given with it, decoded; null for none",
  }),
  createdAt: z.string(),
  /** In lists: the newest rollouts that use it (at most 20). */
  usedBy: z.array(ArtifactUseSchema).optional(),
}).openapi("Artifact");

const RegisterSchema = z.object({
  url: ArtifactUrl,
  digest: Digest,
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  name: ArtifactName.optional(),
  version: ArtifactVersion.optional(),
  releaseNotes: ReleaseNotes.optional(),
  manifest: ManifestField.optional(),
}).strict().openapi("RegisterArtifact");

function artifactJson(artifact: Artifact, publicUrl: string) {
  return {
    digest: artifact.digest,
    size: artifact.size,
    url: artifactUrl(artifact, publicUrl),
    stored: artifact.url === null,
    name: artifact.name,
    version: artifact.version,
    releaseNotes: artifact.releaseNotes,
    release: releaseJson(artifact.manifest),
    createdAt: artifact.createdAt.toISOString(),
  };
}

/** The media type of a Content-Type header, lowercase and without parameters. */
export function mediaType(header: string | undefined): string | undefined {
  return header?.split(";")[0]?.trim().toLowerCase();
}

/** The /v1/artifacts sub-app. */
export function artifactsApp(deps: ArtifactDeps) {
  const app = newApp();
  // An upload is raw bytes, which OpenAPI validators do not read: the route is documented here
  // and handled by hand below, streaming with a cap.
  app.openAPIRegistry.registerPath({
    method: "post",
    path: "/",
    operationId: "createArtifact",
    tags: ["artifacts"],
    summary: "Upload an artifact (raw bytes), or register one hosted elsewhere (JSON)",
    description:
      "An upload takes its name, version and release notes as query parameters; a registration as JSON fields. An upload is capped at FLOTILLA_MAX_ARTIFACT_BYTES.",
    request: {
      query: UploadQuery,
      body: {
        required: true,
        content: {
          // The bytes as OpenAPI 3.1 writes binary content: a non-empty string of any bytes.
          "application/octet-stream": {
            schema: z.string().min(1).openapi({ description: "The artifact's bytes" }),
          },
          "application/json": { schema: RegisterSchema },
        },
      },
    },
    responses: {
      201: jsonResponse(ArtifactSchema, "The artifact: { digest, size, url }"),
      ...AUTH_ERRORS,
      ...TOO_LARGE,
      422: errorContent(
        "The bytes do not hash to the ?digest= given (digest_mismatch), or the manifest does not name this artifact or is not signed by a configured release key (invalid_manifest): nothing was stored",
      ),
      507: errorContent("The disk is full: the upload was not stored"),
    },
  });
  /** The first record of a digest wins its labels, but a manifest given again replaces its own. */
  async function withManifest(db: Db, artifact: Artifact, manifest: string | undefined) {
    if (manifest === undefined || artifact.manifest === manifest) return artifact;
    return await setArtifactManifest(db, artifact.digest, manifest) ?? artifact;
  }
  return app
    .openapi(
      createRoute({
        method: "get",
        path: "/",
        operationId: "listArtifacts",
        tags: ["artifacts"],
        summary: "List artifacts",
        description:
          "Artifacts in digest order, each with the newest rollouts that use it (at most 20).",
        request: {
          query: z.object({
            cursor: z.string().regex(
              /^[0-9a-f]{64}$/,
              "cursor must be a digest: 64 lowercase hex characters",
            )
              .optional().openapi({ description: "The nextCursor of the previous page: a digest" }),
            limit: Limit,
          }).strict(),
        },
        responses: {
          200: jsonResponse(
            z.object({ items: z.array(ArtifactSchema), nextCursor: z.string().nullable() }),
            "A page of artifacts",
          ),
          ...AUTH_ERRORS,
        },
      }),
      async (c) => {
        const query = c.req.valid("query");
        const page = await listArtifacts(deps.db, query);
        const uses = await artifactUses(deps.db, page.items.map((a) => a.digest));
        return c.json({
          items: page.items.map((a) => ({
            ...artifactJson(a, deps.publicUrl),
            usedBy: uses.get(a.digest) ?? [],
          })),
          nextCursor: page.nextCursor,
        }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/{digest}",
        operationId: "getArtifact",
        tags: ["artifacts"],
        summary: "One artifact",
        description: "The artifact's size, labels and the URL devices fetch it from.",
        request: {
          params: z.object({ digest: Digest.openapi({ param: { name: "digest", in: "path" } }) }),
        },
        responses: {
          200: jsonResponse(ArtifactSchema, "The artifact"),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
        },
      }),
      async (c) => {
        const { digest } = c.req.valid("param");
        const artifact = await getArtifact(deps.db, digest);
        if (!artifact) throw new ApiError(404, "not_found", `No artifact "${digest}"`);
        return c.json(artifactJson(artifact, deps.publicUrl), 200);
      },
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/{digest}/manifest",
        operationId: "setArtifactManifest",
        tags: ["artifacts"],
        summary: "Give a stored artifact its signed release manifest",
        description:
          "The manifest `srup release sign` wrote, as base64. It must name the artifact's digest and size and, when the server has release keys (FLOTILLA_RELEASE_KEYS), be signed by one of them. Replaces any manifest the artifact had.",
        middleware: [requireRole("operator")] as const,
        request: {
          params: z.object({ digest: Digest.openapi({ param: { name: "digest", in: "path" } }) }),
          body: jsonBody(
            z.object({ manifest: ManifestField }).strict().openapi("ArtifactManifest"),
          ),
        },
        responses: {
          200: jsonResponse(ArtifactSchema, "The artifact with its manifest"),
          ...AUTH_ERRORS,
          ...NOT_FOUND,
          422: errorContent(
            "The manifest does not decode, does not name this artifact, or is not signed by a configured release key (invalid_manifest)",
          ),
        },
      }),
      async (c) => {
        const { digest } = c.req.valid("param");
        const artifact = await getArtifact(deps.db, digest);
        if (!artifact) throw new ApiError(404, "not_found", `No artifact "${digest}"`);
        const { manifest } = c.req.valid("json");
        await checkManifest(manifest, artifact, deps.releaseKeys);
        return c.json(
          artifactJson(await withManifest(deps.db, artifact, manifest), deps.publicUrl),
          200,
        );
      },
    )
    .post("/", requireRole("operator"), async (c) => {
      const type = mediaType(c.req.header("content-type"));
      if (type === "application/json") {
        let body: unknown;
        try {
          body = await c.req.json();
        } catch {
          throw new ApiError(400, "invalid_request", "Malformed JSON in request body");
        }
        const parsed = RegisterSchema.safeParse(body);
        if (!parsed.success) throw invalidRequest("json", parsed.error);
        const { manifest } = parsed.data;
        if (manifest !== undefined) {
          await checkManifest(manifest, {
            digest: parsed.data.digest,
            size: parsed.data.size ?? null,
          }, deps.releaseKeys);
        }
        const artifact = await putArtifact(deps.db, {
          digest: parsed.data.digest,
          url: parsed.data.url,
          size: parsed.data.size ?? null,
          name: parsed.data.name ?? null,
          version: parsed.data.version ?? null,
          releaseNotes: parsed.data.releaseNotes ?? null,
          manifest: manifest ?? null,
        });
        return c.json(
          artifactJson(await withManifest(deps.db, artifact, manifest), deps.publicUrl),
          201,
        );
      }
      const labels = UploadQuery.safeParse(c.req.query());
      if (!labels.success) throw invalidRequest("query", labels.error);
      const { manifest, name, version, releaseNotes } = labels.data;
      // Checked before the bytes are read when the digest is given; otherwise once they are.
      if (manifest !== undefined && labels.data.digest !== undefined) {
        await checkManifest(manifest, { digest: labels.data.digest, size: null }, deps.releaseKeys);
      }
      const length = Number(c.req.header("content-length") ?? Number.NaN);
      if (length > deps.maxBytes) {
        throw new ApiError(
          413,
          "payload_too_large",
          `Artifact of ${length} bytes exceeds ${deps.maxBytes}`,
        );
      }
      const body = c.req.raw.body;
      if (!body) {
        throw new ApiError(400, "invalid_request", "Empty body: send the artifact's bytes");
      }
      let artifact: Artifact | undefined;
      // What recording threw passes on as it is: it is no fault of the upload's bytes.
      let recordError: unknown;
      async function record(stored: PutArtifact, tx: Db = deps.db): Promise<void> {
        try {
          if (manifest !== undefined) await checkManifest(manifest, stored, deps.releaseKeys);
          const recorded = await putArtifact(tx, {
            digest: stored.digest,
            size: stored.size,
            path: "path" in stored ? stored.path : null,
            blob: "blob" in stored ? stored.blob : null,
            contentType: type ?? "application/octet-stream",
            name: name ?? null,
            version: version ?? null,
            releaseNotes: releaseNotes ?? null,
            manifest: manifest ?? null,
          });
          artifact = await withManifest(tx, recorded, manifest);
        } catch (error) {
          recordError = error;
          throw error;
        }
      }
      try {
        await deps.store.put(body, deps.maxBytes, { digest: labels.data.digest, record });
      } catch (error) {
        // The store kept nothing: nothing of a refused upload can be downloaded.
        if (error === recordError || error instanceof ApiError) throw error;
        if (error instanceof ArtifactTooLargeError) {
          throw new ApiError(413, "payload_too_large", error.message);
        }
        if (error instanceof EmptyArtifactError) {
          throw new ApiError(400, "invalid_request", error.message);
        }
        if (error instanceof DigestMismatchError) {
          // Well formed, as the document says, but not what the client meant to send: 422.
          throw new ApiError(422, "digest_mismatch", `Upload refused: ${error.message}`, {
            details: { expected: error.expected, actual: error.actual },
          });
        }
        if ((error as { code?: unknown }).code === "ENOSPC" || sqlState(error) === "53100") {
          throw new ApiError(507, "insufficient_storage", "Cannot store upload: the disk is full");
        }
        // The database (FLOTILLA_ARTIFACT_STORE=db) is away: 503, as for any other call.
        if (isUnavailable(error)) throw error;
        throw new ApiError(
          400,
          "invalid_request",
          `Cannot read upload: ${(error as Error).message}`,
        );
      }
      return c.json(artifactJson(artifact!, deps.publicUrl), 201);
    });
}

/** One byte range of a file, as `Range: bytes=a-b` asks. */
function parseRange(
  header: string,
  size: number,
): { start: number; end: number } | "invalid" | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Multiple ranges or other units: serve the whole file, as RFC 9110 allows.
  if (!match) return undefined;
  const [, first, last] = match;
  if (first === "" && last === "") return "invalid";
  let start: number;
  let end: number;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0) return "invalid";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(first);
    end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  }
  if (start >= size || start > end) return "invalid";
  return { start, end };
}

/** GET/HEAD /artifacts/<sha256>: public, since devices fetch with the digest as the secret-free key. */
export function downloadsApp(store: ArtifactStore) {
  const app = newApp();
  // Bytes, ranges and conditional requests: documented here, handled by hand below.
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/{digest}",
    operationId: "downloadArtifact",
    tags: ["downloads"],
    summary: "Download a stored artifact",
    description:
      "The bytes devices fetch, public since the digest is the key. Supports HEAD, a single `Range: bytes=a-b` (206), and `If-None-Match` with the ETag (304).",
    security: [],
    request: {
      params: z.object({
        digest: z.string().openapi({
          param: { name: "digest", in: "path" },
          example: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        }),
      }),
      headers: z.object({
        range: z.string().optional().openapi({ description: "One byte range, e.g. bytes=0-1023" }),
        "if-none-match": z.string().optional().openapi({
          description: "The ETag of a cached copy",
        }),
        "if-range": z.string().optional().openapi({
          description: "Serve the range only if this is the ETag",
        }),
      }),
    },
    responses: {
      200: {
        description: "The whole file",
        content: {
          "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) },
        },
      },
      206: {
        description: "The range asked for",
        content: {
          "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) },
        },
      },
      304: { description: "The cached copy is current" },
      ...NOT_FOUND,
      416: errorContent("The range lies outside the file"),
    },
  });
  return app.on(["GET", "HEAD"], "/:digest", async (c) => {
    const digest = c.req.param("digest");
    if (!isDigest(digest)) throw new ApiError(404, "not_found", `No artifact "${digest}"`);
    const artifact = await store.get(digest);
    if (!artifact) throw new ApiError(404, "not_found", `No artifact "${digest}"`);
    const etag = `"${digest}"`;
    c.header("ETag", etag);
    c.header("Accept-Ranges", "bytes");
    c.header("Cache-Control", "public, max-age=31536000, immutable");
    c.header("Content-Type", "application/octet-stream");
    const ifNoneMatch = c.req.header("if-none-match");
    if (
      ifNoneMatch && ifNoneMatch.split(",").some((tag) => tag.trim() === etag || tag.trim() === "*")
    ) {
      return c.body(null, 304);
    }
    const rangeHeader = c.req.header("range");
    const ifRange = c.req.header("if-range");
    const range = rangeHeader && (!ifRange || ifRange === etag)
      ? parseRange(rangeHeader, artifact.size)
      : undefined;
    if (range === "invalid") {
      c.header("Content-Range", `bytes */${artifact.size}`);
      throw new ApiError(
        416,
        "range_not_satisfiable",
        `Range "${rangeHeader}" is outside 0-${artifact.size - 1}`,
      );
    }
    const start = range?.start ?? 0;
    const length = range ? range.end - range.start + 1 : artifact.size;
    c.header("Content-Length", String(length));
    if (range) c.header("Content-Range", `bytes ${range.start}-${range.end}/${artifact.size}`);
    const status = range ? 206 : 200;
    if (c.req.method === "HEAD") return c.body(null, status);
    const bytes = await store.bytes(artifact);
    if (bytes) return c.body(bytes.subarray(start, start + length), status);
    const body = await store.stream(artifact, start, length);
    return c.body(body, status);
  });
}
