/** `ctl artifact ...`: upload, register and list artifacts. */
import { answer, type ApiTarget } from "./api.ts";
import { UsageError } from "./args.ts";
import { type CtlCommand, need, PAGE, type Row, showPage, str } from "./ctl_command.ts";

/** Streams a file as the upload body. */
export async function upload(
  api: ApiTarget,
  path: string,
  labels: { name?: string; version?: string; releaseNotes?: string; manifest?: string } = {},
): Promise<Row> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw new UsageError(`Cannot read "${path}": ${(error as Error).message}`);
  }
  const size = (await file.stat()).size;
  // The route takes raw bytes, which hc cannot type: the typed call passes the stream as `init.body`.
  return await answer(
    api,
    api.client.v1.artifacts.$post({ query: labels }, {
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      init: { body: file.readable },
    }),
  ) as Row;
}

/** Base64 of a manifest file, or undefined for no path. */
async function readManifest(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return (await Deno.readFile(path)).toBase64();
  } catch (error) {
    throw new UsageError(`Cannot read manifest "${path}": ${(error as Error).message}`);
  }
}

/** The artifact commands. */
export const ARTIFACT_COMMANDS: CtlCommand[] = [
  {
    name: "artifact upload",
    usage: "FILE [--name NAME] [--version V] [--release-notes TEXT] [--manifest FILE]",
    summary:
      "stream a file to the orchestrator, with the name and version lists show and its signed release manifest",
    positionals: ["FILE"],
    options: {
      name: { type: "string" },
      version: { type: "string" },
      "release-notes": { type: "string" },
      manifest: { type: "string" },
    },
    run: async (api, input) =>
      upload(api, input.positionals[0]!, {
        name: str(input, "name"),
        version: str(input, "version"),
        releaseNotes: str(input, "release-notes"),
        manifest: await readManifest(str(input, "manifest")),
      }),
  },
  {
    name: "artifact manifest",
    usage: "DIGEST FILE",
    summary: "give a stored artifact its signed release manifest (`srup release sign` wrote FILE)",
    positionals: ["DIGEST", "FILE"],
    run: async (api, input) =>
      answer(
        api,
        api.client.v1.artifacts[":digest"].manifest.$put({
          param: { digest: input.positionals[0]! },
          json: { manifest: (await readManifest(input.positionals[1]!))! },
        }),
      ),
  },
  {
    name: "artifact register",
    usage: "--url URL --digest HEX [--size N]",
    summary: "a file hosted elsewhere",
    options: { url: { type: "string" }, digest: { type: "string" }, size: { type: "string" } },
    run(api, input) {
      const size = str(input, "size");
      if (size !== undefined && !/^\d+$/.test(size)) {
        throw new UsageError(`Invalid --size "${size}": expected a number of bytes`);
      }
      return answer(
        api,
        // The JSON form of the upload route; hc types neither form, so this object is unchecked.
        api.client.v1.artifacts.$post({
          json: {
            url: need(input, "url"),
            digest: need(input, "digest"),
            ...(size === undefined ? {} : { size: Number(size) }),
          },
        }),
      );
    },
  },
  {
    name: "artifact list",
    usage: "[--limit N] [--cursor C]",
    summary: "artifacts, uploaded and registered",
    options: PAGE,
    run: (api, input) =>
      answer(
        api,
        api.client.v1.artifacts.$get({
          query: { limit: str(input, "limit"), cursor: str(input, "cursor") },
        }),
      ),
    show: showPage([
      ["DIGEST", (a) => a.digest],
      ["SIZE", (a) => a.size],
      ["STORED", (a) => a.stored],
      ["URL", (a) => a.url],
    ]),
  },
  {
    name: "artifact get",
    usage: "DIGEST",
    summary: "one artifact",
    positionals: ["DIGEST"],
    run: (api, input) =>
      answer(
        api,
        api.client.v1.artifacts[":digest"].$get({ param: { digest: input.positionals[0]! } }),
      ),
  },
];
