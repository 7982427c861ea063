/** `flotilla ctl`: drive a running orchestrator's API from a terminal, through the typed client. */
import { FINAL_EVENT_TYPE } from "../actors/mod.ts";
import { createClient } from "../http/client.ts";
import { parse, printJson, UsageError } from "./args.ts";

export const HELP = `Usage: flotilla ctl [--api URL] [--token T] <resource> <command> [options]

The API defaults to $FLOTILLA_API or http://127.0.0.1:8080; the token to $FLOTILLA_TOKEN.
Every command prints the API's JSON answer.

  server                                      what a device needs to be provisioned
  device register --id UUID --public-key B64 [--tag k=v ...]
  device list [--tag k:v ...] [--state S] [--limit N] [--cursor C]
  device get ID | device delete ID
  artifact upload FILE                        stream a file; prints { digest, size, url }
  artifact register --url URL --digest HEX    a file hosted elsewhere
  artifact list
  rollout create (--artifact FILE | --digest HEX [--url URL]) (--policy NAME | --policy-file FILE)
                 (--all | --ids ID,ID,... | --tag k=v ...)
  rollout list [--state S] | rollout get ID | rollout devices ID [--state S]
  rollout pause|resume|cancel|promote ID
  rollout watch ID                            stream the rollout's events until it ends
  policy list | policy get NAME | policy reload
  token create --name N --role viewer|operator|admin | token list | token revoke ID
  events [--rollout ID] [--device ID] [--after N]   stream events as JSON lines`;

/** Thrown for an error answer of the API; printed as one line, exit code 1. */
class ApiCallError extends Error {}

interface Context {
  api: string;
  token: string;
  client: ReturnType<typeof createClient>;
}

/** Runs `ctl`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  // Options after the resource belong to the subcommand, which parses them itself.
  const split = firstPositional(args);
  const head = parse(args.slice(0, split), {
    api: { type: "string" },
    token: { type: "string" },
    help: { type: "boolean", short: "h" },
  }).values;
  const [resource, command, ...rest] = args.slice(split);
  if (head.help || resource === undefined) {
    console.log(HELP);
    return resource === undefined && !head.help ? 2 : 0;
  }
  const api = (head.api ?? Deno.env.get("FLOTILLA_API") ?? "http://127.0.0.1:8080").replace(
    /\/+$/,
    "",
  );
  const token = head.token ?? Deno.env.get("FLOTILLA_TOKEN") ?? "";
  if (!token) throw new UsageError("ctl needs a token: --token T or FLOTILLA_TOKEN");
  const context = { api, token, client: createClient(api, token) };
  try {
    await dispatch(context, resource, command, rest);
    return 0;
  } catch (error) {
    if (error instanceof ApiCallError) {
      console.error(error.message);
      return 1;
    }
    if (error instanceof TypeError && /fetch|connect|network/i.test(error.message)) {
      console.error(`Cannot reach the API at ${api}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

function firstPositional(args: string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--api" || arg === "--token") {
      i++;
      continue;
    }
    if (!arg.startsWith("-")) return i;
  }
  return args.length;
}

/** Prints a JSON answer, or throws for an error answer. */
async function answer(
  response: { ok: boolean; status: number; text(): Promise<string> },
  print = true,
): Promise<unknown> {
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!response.ok) {
    const error = (body as { error?: { code: string; message: string } } | null)?.error;
    throw new ApiCallError(
      error ? `${response.status} ${error.code}: ${error.message}` : `${response.status}: ${text}`,
    );
  }
  if (body !== null && print) printJson(body);
  return body;
}

function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`missing ${what}`);
  return value;
}

function pairs(values: string[] | undefined, separator: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const pair of values ?? []) {
    const at = pair.indexOf(separator);
    if (at < 1) throw new UsageError(`invalid tag "${pair}": expected key${separator}value`);
    tags[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return tags;
}

async function dispatch(
  ctx: Context,
  resource: string,
  command: string | undefined,
  rest: string[],
) {
  const v1 = ctx.client.v1;
  const key = `${resource} ${command ?? ""}`.trim();
  switch (key) {
    case "server":
      return await answer(await v1.server.$get());
    case "device register": {
      const { values } = parse(rest, {
        id: { type: "string" },
        "public-key": { type: "string" },
        tag: { type: "string", multiple: true },
      });
      return await answer(
        await v1.devices.$post({
          json: {
            id: need(values.id, "--id"),
            publicKey: need(values["public-key"], "--public-key"),
            tags: pairs(values.tag, "="),
          },
        }),
      );
    }
    case "device list": {
      const { values } = parse(rest, {
        tag: { type: "string", multiple: true },
        state: { type: "string" },
        limit: { type: "string" },
        cursor: { type: "string" },
      });
      return await answer(
        await v1.devices.$get({
          query: {
            tag: values.tag,
            state: values.state,
            limit: values.limit,
            cursor: values.cursor,
          },
        }),
      );
    }
    case "device get":
      return await answer(await v1.devices[":id"].$get({ param: { id: one(rest, "device id") } }));
    case "device delete":
      return await answer(
        await v1.devices[":id"].$delete({ param: { id: one(rest, "device id") } }),
      );
    case "artifact upload":
      return await upload(ctx, one(rest, "file"));
    case "artifact register": {
      const { values } = parse(rest, { url: { type: "string" }, digest: { type: "string" } });
      return await answer(
        await postJson(ctx, "/v1/artifacts", {
          url: need(values.url, "--url"),
          digest: need(values.digest, "--digest"),
        }),
      );
    }
    case "artifact list":
      return await answer(await v1.artifacts.$get({ query: {} }));
    case "rollout create":
      return await createRollout(ctx, rest);
    case "rollout list": {
      const { values } = parse(rest, { state: { type: "string" }, limit: { type: "string" } });
      return await answer(
        await v1.rollouts.$get({
          query: { state: values.state as "running" | undefined, limit: values.limit },
        }),
      );
    }
    case "rollout get":
      return await answer(
        await v1.rollouts[":id"].$get({ param: { id: one(rest, "rollout id") } }),
      );
    case "rollout devices": {
      const { values, positionals } = parse(rest, { state: { type: "string" } }, true);
      return await answer(
        await v1.rollouts[":id"].devices.$get({
          param: { id: one(positionals, "rollout id") },
          query: { state: values.state },
        }),
      );
    }
    case "rollout pause":
      return await answer(
        await v1.rollouts[":id"].pause.$post({ param: { id: one(rest, "rollout id") } }),
      );
    case "rollout resume":
      return await answer(
        await v1.rollouts[":id"].resume.$post({ param: { id: one(rest, "rollout id") } }),
      );
    case "rollout cancel":
      return await answer(
        await v1.rollouts[":id"].cancel.$post({ param: { id: one(rest, "rollout id") } }),
      );
    case "rollout promote":
      return await answer(
        await v1.rollouts[":id"].promote.$post({ param: { id: one(rest, "rollout id") } }),
      );
    case "rollout watch":
      return await watch(ctx, one(rest, "rollout id"));
    case "policy list":
      return await answer(await v1.policies.$get());
    case "policy get":
      return await answer(
        await v1.policies[":name"].$get({ param: { name: one(rest, "policy name") } }),
      );
    case "policy reload":
      return await answer(await v1.policies.reload.$post());
    case "token create": {
      const { values } = parse(rest, { name: { type: "string" }, role: { type: "string" } });
      const role = need(values.role, "--role");
      if (role !== "viewer" && role !== "operator" && role !== "admin") {
        throw new UsageError(`invalid role "${role}": viewer, operator or admin`);
      }
      return await answer(
        await v1.tokens.$post({ json: { name: need(values.name, "--name"), role } }),
      );
    }
    case "token list":
      return await answer(await v1.tokens.$get());
    case "token revoke":
      return await answer(await v1.tokens[":id"].$delete({ param: { id: one(rest, "token id") } }));
    case "events": {
      const { values } = parse([command ?? "", ...rest].filter(Boolean), {
        rollout: { type: "string" },
        device: { type: "string" },
        after: { type: "string" },
      });
      return await streamEvents(ctx, values, () => false);
    }
    default:
      throw new UsageError(`unknown command "${key}": see ctl --help`);
  }
}

function one(values: string[], what: string): string {
  if (values.length !== 1) throw new UsageError(`expected one ${what}`);
  return values[0]!;
}

function postJson(ctx: Context, path: string, body: unknown): Promise<Response> {
  return fetch(`${ctx.api}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${ctx.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function upload(ctx: Context, path: string, print = true): Promise<{ digest: string }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw new UsageError(`cannot read "${path}": ${(error as Error).message}`);
  }
  const size = (await file.stat()).size;
  const response = await fetch(`${ctx.api}/v1/artifacts`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${ctx.token}`,
      "content-type": "application/octet-stream",
      "content-length": String(size),
    },
    body: file.readable,
  });
  return await answer(response, print) as { digest: string };
}

async function createRollout(ctx: Context, rest: string[]): Promise<unknown> {
  const { values } = parse(rest, {
    artifact: { type: "string" },
    digest: { type: "string" },
    url: { type: "string" },
    policy: { type: "string" },
    "policy-file": { type: "string" },
    all: { type: "boolean" },
    ids: { type: "string" },
    tag: { type: "string", multiple: true },
  });
  const targetKinds = [values.all, values.ids, values.tag?.length].filter(Boolean).length;
  if (targetKinds !== 1) throw new UsageError("give exactly one of --all, --ids and --tag");
  if ((values.policy === undefined) === (values["policy-file"] === undefined)) {
    throw new UsageError("give exactly one of --policy and --policy-file");
  }
  let artifact: { digest: string; url?: string };
  if (values.artifact) {
    const uploaded = await upload(ctx, values.artifact, false);
    artifact = { digest: uploaded.digest };
  } else {
    artifact = { digest: need(values.digest, "--artifact or --digest") };
    if (values.url) artifact.url = values.url;
  }
  let policy: string | Record<string, unknown> = values.policy ?? "";
  if (values["policy-file"]) {
    const { parse: parseYaml } = await import("yaml");
    policy = parseYaml(await Deno.readTextFile(values["policy-file"])) as Record<string, unknown>;
  }
  const targets = values.all
    ? { all: true as const }
    : values.ids
    ? { ids: values.ids.split(",").map((id) => id.trim()).filter(Boolean) }
    : { tags: pairs(values.tag, "=") };
  return await answer(await postJson(ctx, "/v1/rollouts", { artifact, policy, targets }));
}

const FINAL_EVENTS: ReadonlySet<string> = new Set(Object.values(FINAL_EVENT_TYPE));

async function watch(ctx: Context, id: string): Promise<void> {
  await answer(await ctx.client.v1.rollouts[":id"].$get({ param: { id } }));
  await streamEvents(ctx, { rollout: id, after: "0" }, (type) => FINAL_EVENTS.has(type));
}

/** Prints each SSE event as a JSON line until `stop` says so or the stream ends. */
async function streamEvents(
  ctx: Context,
  filter: { rollout?: string; device?: string; after?: string },
  stop: (type: string) => boolean,
): Promise<void> {
  const query = new URLSearchParams(
    Object.entries(filter).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const response = await fetch(`${ctx.api}/v1/events?${query}`, {
    headers: { authorization: `Bearer ${ctx.token}`, accept: "text/event-stream" },
  });
  if (!response.ok) {
    await answer(response);
    return;
  }
  let buffer = "";
  for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart()).join("\n");
      if (!data) continue;
      console.log(data);
      const type = (JSON.parse(data) as { type?: string }).type ?? "";
      if (stop(type)) {
        await response.body?.cancel().catch(() => {});
        return;
      }
    }
  }
}
