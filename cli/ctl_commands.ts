/** The `ctl` commands: one entry per command, each a call (or a few) of the typed API client. */
import { parse as parseYaml } from "yaml";
import { FINAL_EVENT_TYPE } from "../actors/mod.ts";
import { formatIssue, parsePolicy, PolicyError } from "../policies/mod.ts";
import { answer, type ApiTarget, reach } from "./api.ts";
import { UsageError } from "./args.ts";
import { type Column, record, short, table, text } from "./ctl_format.ts";

/** Parsed arguments of one command. */
export interface CtlInput {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** `--json`: print the API's JSON, one line per answer or event. */
  json: boolean;
}

/** One `ctl` command. */
export interface CtlCommand {
  /** The words that select it, e.g. `rollout create`. */
  name: string;
  /** Its arguments, as the help shows them. */
  usage: string;
  summary: string;
  options?: Record<string, { type: "string" | "boolean"; multiple?: boolean }>;
  /** Names of its positional arguments, all required. */
  positionals?: string[];
  /** Calls the API; returns the answer to print, or nothing when it printed as it went. */
  run(api: ApiTarget, input: CtlInput): Promise<unknown>;
  /** The answer for a person; without it the answer shows as `key: value` lines. */
  show?(answer: unknown): string;
}

type Row = Record<string, unknown>;
type Page = { items: Row[]; nextCursor: unknown };

const PAGE = {
  limit: { type: "string" },
  cursor: { type: "string" },
} as const;

function str(input: CtlInput, name: string): string | undefined {
  const value = input.values[name];
  return typeof value === "string" ? value : undefined;
}

function need(input: CtlInput, name: string): string {
  const value = str(input, name);
  if (value === undefined || value === "") throw new UsageError(`Missing --${name}`);
  return value;
}

/** `--tag key=value` options, the one tag syntax of the CLI and the API. */
function tags(input: CtlInput): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const pair of (input.values.tag as string[] | undefined) ?? []) {
    const at = pair.indexOf("=");
    if (at < 1) throw new UsageError(`Invalid --tag "${pair}": expected key=value`);
    pairs[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return pairs;
}

function showPage(columns: Column<Row>[]) {
  return (value: unknown) => {
    const page = value as Page;
    return table(page.items, columns, page.nextCursor);
  };
}

const DEVICE_COLUMNS: Column<Row>[] = [
  ["ID", (d) => d.id],
  ["CURRENT", (d) => short(d.currentDigest)],
  ["LAST SEEN", (d) => d.lastSeenAt],
  ["TAGS", (d) => d.tags],
];

const ROLLOUT_COLUMNS: Column<Row>[] = [
  ["ID", (r) => r.id],
  ["STATE", (r) => r.state],
  ["STAGE", (r) => stageOf(r)],
  ["DEVICES", (r) => r.devices],
  ["POLICY", (r) => (r.policy as Row).name],
  ["ARTIFACT", (r) => short((r.artifact as Row).digest)],
  ["CREATED", (r) => r.createdAt],
];

function stageOf(rollout: Row): string {
  const stages = rollout.stages as unknown[] | null;
  const stage = Number(rollout.stage) + 1;
  return stages ? `${stage} of ${stages.length}` : String(stage);
}

/** A rollout as a few lines: what it is, where it is, and its counts. */
function showRollout(value: unknown): string {
  const r = value as Row;
  const lines = [
    `rollout ${r.id}: ${r.state}, stage ${stageOf(r)}, ${r.devices} devices`,
    `  artifact ${(r.artifact as Row).digest}`,
    `  policy   ${(r.policy as Row).name} (sha256 ${short((r.policy as Row).sha256)})`,
    `  counts   ${text(r.counts)}`,
  ];
  if (r.haltReason) lines.push(`  halted   ${(r.haltReason as Row).message}`);
  if (r.pauseReason) lines.push(`  paused   ${text(r.pauseReason)}`);
  if (r.bakeUntil) lines.push(`  bakes until ${r.bakeUntil}`);
  return lines.join("\n");
}

function rolloutCommand(name: "pause" | "resume" | "cancel" | "promote"): CtlCommand {
  const summaries = {
    pause: "stop sending INITIATEs until resumed",
    resume: "go on after a pause",
    cancel: "end the rollout; devices under way finish their step",
    promote: "approve a stage waiting for manual approval",
  };
  return {
    name: `rollout ${name}`,
    usage: "ID",
    summary: summaries[name],
    positionals: ["ID"],
    run: (api, input) =>
      answer(
        api,
        api.client.v1.rollouts[":id"][name].$post({ param: { id: input.positionals[0]! } }),
      ),
    show: showRollout,
  };
}

/** The devices of `path`: a JSON array or object `{devices}`, or JSON lines as `device provision` prints. */
async function readDevices(path: string): Promise<Row[]> {
  let content: string;
  try {
    content = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`Cannot read "${path}": ${(error as Error).message}`);
  }
  try {
    const trimmed = content.trim();
    if (trimmed.startsWith("[")) return JSON.parse(trimmed);
    if (trimmed.startsWith("{") && !trimmed.includes("\n")) {
      const one = JSON.parse(trimmed);
      return Array.isArray(one.devices) ? one.devices : [one];
    }
    return trimmed.split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line));
  } catch (error) {
    throw new UsageError(`Cannot read "${path}": ${(error as Error).message}`);
  }
}

/** Reads and checks a policy file here, so every problem shows with its line (not the API's first). */
async function readPolicyFile(path: string): Promise<Record<string, unknown>> {
  let content: string;
  try {
    content = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`Cannot read --policy-file "${path}": ${(error as Error).message}`);
  }
  try {
    parsePolicy(content, { source: path });
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    for (const issue of error.issues) console.error(formatIssue(issue));
    throw new Error(
      `Cannot create rollout: policy file "${path}" has ${error.issues.length} problem(s), listed above`,
    );
  }
  return parseYaml(content) as Record<string, unknown>;
}

/** Streams a file as the upload body. */
async function upload(api: ApiTarget, path: string): Promise<Row> {
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
    api.client.v1.artifacts.$post(undefined, {
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      init: { body: file.readable },
    }),
  ) as Row;
}

/** What the events stream sends. */
interface StreamedEvent {
  id: number;
  type: string;
  rolloutId: string | null;
  deviceId: string | null;
  at: string;
  data: Record<string, unknown>;
}

function showEvent(event: StreamedEvent): string {
  const where = [
    event.rolloutId ? `rollout ${event.rolloutId}` : "",
    event.deviceId ? `device ${event.deviceId}` : "",
  ].filter(Boolean).join(" ");
  const data = Object.keys(event.data).length > 0 ? `  ${text(event.data)}` : "";
  return `${event.at}  #${event.id}  ${event.type}  ${where}${data}`;
}

/**
 * Prints the events of `/v1/events` (Server-Sent Events) as they come until `stop` says so or the
 * stream ends. hc types no SSE answer, so the typed call's body is read as a stream here.
 */
async function streamEvents(
  api: ApiTarget,
  query: { rollout?: string; device?: string; after?: string },
  options: { json: boolean; stop?: (event: StreamedEvent) => boolean },
): Promise<void> {
  const response = await reach(
    api,
    api.client.v1.events.$get({ query }, { headers: { accept: "text/event-stream" } }),
  );
  if (!response.ok || !response.body) {
    await answer(api, Promise.resolve(response));
    return;
  }
  let buffer = "";
  for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart()).join("\n");
      if (!data) continue;
      const event = JSON.parse(data) as StreamedEvent;
      console.log(options.json ? data : showEvent(event));
      if (options.stop?.(event)) {
        await response.body.cancel().catch(() => {});
        return;
      }
    }
  }
}

const FINAL_EVENTS: ReadonlySet<string> = new Set(Object.values(FINAL_EVENT_TYPE));

/** Every `ctl` command, in the order the help lists them. */
export const COMMANDS: CtlCommand[] = [
  {
    name: "server",
    usage: "",
    summary: "what a device needs to be provisioned",
    run: (api) => answer(api, api.client.v1.server.$get()),
  },
  {
    name: "health",
    usage: "",
    summary: "whether the orchestrator is live and ready (/healthz, /readyz); exit 1 if not ready",
    async run(api) {
      const live = await answer(api, api.client.healthz.$get());
      const response = await reach(api, api.client.readyz.$get());
      const ready = await response.text();
      if (!response.ok) {
        throw new Error(`The orchestrator is not ready: ${response.status} ${ready}`);
      }
      return { live, ready: JSON.parse(ready) };
    },
  },
  {
    name: "device register",
    usage: "--id UUID --public-key BASE64 [--tag key=value ...]",
    summary: "register one device",
    options: {
      id: { type: "string" },
      "public-key": { type: "string" },
      tag: { type: "string", multiple: true },
    },
    run: (api, input) =>
      answer(
        api,
        api.client.v1.devices.$post({
          json: { id: need(input, "id"), publicKey: need(input, "public-key"), tags: tags(input) },
        }),
      ),
  },
  {
    name: "device import",
    usage: "FILE [--tag key=value ...] [--skip-existing]",
    summary: "register many devices at once, all or nothing (JSON array, or JSON lines as " +
      "`device provision` prints)",
    options: { tag: { type: "string", multiple: true }, "skip-existing": { type: "boolean" } },
    positionals: ["FILE"],
    async run(api, input) {
      const extra = tags(input);
      const devices = (await readDevices(input.positionals[0]!)).map((device) => ({
        id: String(device.id),
        publicKey: String(device.publicKey),
        tags: { ...(device.tags as Record<string, string> | undefined), ...extra },
      }));
      return await answer(
        api,
        api.client.v1.devices.batch.$post({
          json: { devices, ifExists: input.values["skip-existing"] ? "skip" : "error" },
        }),
      );
    },
  },
  {
    name: "device list",
    usage: "[--tag key=value ...] [--state S] [--limit N] [--cursor C]",
    summary: "devices, filtered by tags (all must match) and state in their latest rollout",
    options: { tag: { type: "string", multiple: true }, state: { type: "string" }, ...PAGE },
    run: (api, input) =>
      answer(
        api,
        api.client.v1.devices.$get({
          query: {
            tag: Object.entries(tags(input)).map(([key, value]) => `${key}=${value}`),
            state: str(input, "state"),
            limit: str(input, "limit"),
            cursor: str(input, "cursor"),
          },
        }),
      ),
    show: showPage(DEVICE_COLUMNS),
  },
  {
    name: "device get",
    usage: "ID",
    summary: "a device and its rollout history",
    positionals: ["ID"],
    run: (api, input) =>
      answer(api, api.client.v1.devices[":id"].$get({ param: { id: input.positionals[0]! } })),
    show(value) {
      const { history, ...device } = value as Row & { history: Row[] };
      return `${record(device)}\n\nhistory:\n${
        table(history, [
          ["ROLLOUT", (h) => h.rolloutId],
          ["ROLLOUT STATE", (h) => h.rolloutState],
          ["ARTIFACT", (h) => short(h.artifactDigest)],
          ["STATE", (h) => h.state],
          ["ATTEMPT", (h) => h.attempt],
          ["UPDATED", (h) => h.updatedAt],
        ])
      }`;
    },
  },
  {
    name: "device delete",
    usage: "ID",
    summary: "remove a device (refused while it is in an active rollout)",
    positionals: ["ID"],
    async run(api, input) {
      const id = input.positionals[0]!;
      await answer(api, api.client.v1.devices[":id"].$delete({ param: { id } }));
      return { deleted: id };
    },
  },
  {
    name: "artifact upload",
    usage: "FILE",
    summary: "stream a file to the orchestrator",
    positionals: ["FILE"],
    run: (api, input) => upload(api, input.positionals[0]!),
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
  {
    name: "rollout create",
    usage: "(--artifact FILE | --digest HEX [--url URL]) (--policy NAME | --policy-file FILE)\n" +
      "                 (--all | --ids ID,ID,... | --tag key=value ...)",
    summary: "create and start a rollout (--artifact uploads the file first)",
    options: {
      artifact: { type: "string" },
      digest: { type: "string" },
      url: { type: "string" },
      policy: { type: "string" },
      "policy-file": { type: "string" },
      all: { type: "boolean" },
      ids: { type: "string" },
      tag: { type: "string", multiple: true },
    },
    async run(api, input) {
      const ids = str(input, "ids");
      const tagged = tags(input);
      const kinds = [input.values.all, ids, Object.keys(tagged).length].filter(Boolean).length;
      if (kinds !== 1) throw new UsageError("give exactly one of --all, --ids and --tag");
      const file = str(input, "artifact");
      const digest = str(input, "digest");
      if ((file === undefined) === (digest === undefined)) {
        throw new UsageError("give exactly one of --artifact and --digest");
      }
      const policyName = str(input, "policy");
      const policyFile = str(input, "policy-file");
      if ((policyName === undefined) === (policyFile === undefined)) {
        throw new UsageError("give exactly one of --policy and --policy-file");
      }
      const policy = policyFile === undefined ? policyName! : await readPolicyFile(policyFile);
      const url = str(input, "url");
      const artifact = file !== undefined
        ? { digest: String((await upload(api, file)).digest) }
        : url === undefined
        ? { digest: digest! }
        : { digest: digest!, url };
      const targets = input.values.all
        ? { all: true as const }
        : ids
        ? { ids: ids.split(",").map((id) => id.trim()).filter(Boolean) }
        : { tags: tagged };
      return await answer(
        api,
        api.client.v1.rollouts.$post({ json: { artifact, policy, targets } }),
      );
    },
    show: showRollout,
  },
  {
    name: "rollout list",
    usage: "[--state S] [--limit N] [--cursor C]",
    summary: "rollouts, newest first",
    options: { state: { type: "string" }, ...PAGE },
    run: (api, input) =>
      answer(
        api,
        api.client.v1.rollouts.$get({
          query: {
            // The API names the states it accepts when given another.
            state: str(input, "state") as "running" | undefined,
            limit: str(input, "limit"),
            cursor: str(input, "cursor"),
          },
        }),
      ),
    show: showPage(ROLLOUT_COLUMNS),
  },
  {
    name: "rollout get",
    usage: "ID",
    summary: "a rollout's state, stage, counts and halt reason",
    positionals: ["ID"],
    run: (api, input) =>
      answer(api, api.client.v1.rollouts[":id"].$get({ param: { id: input.positionals[0]! } })),
    show: showRollout,
  },
  {
    name: "rollout devices",
    usage: "ID [--state S] [--limit N] [--cursor C]",
    summary: "a rollout's devices in rollout order",
    options: { state: { type: "string" }, ...PAGE },
    positionals: ["ID"],
    run: (api, input) =>
      answer(
        api,
        api.client.v1.rollouts[":id"].devices.$get({
          param: { id: input.positionals[0]! },
          query: {
            state: str(input, "state"),
            limit: str(input, "limit"),
            cursor: str(input, "cursor"),
          },
        }),
      ),
    show: showPage([
      ["DEVICE", (d) => d.deviceId],
      ["STATE", (d) => d.state],
      ["ATTEMPT", (d) => d.attempt],
      ["STATUS", (d) => d.lastStatus],
      ["UPDATED", (d) => d.updatedAt],
    ]),
  },
  rolloutCommand("pause"),
  rolloutCommand("resume"),
  rolloutCommand("cancel"),
  rolloutCommand("promote"),
  {
    name: "rollout watch",
    usage: "ID",
    summary: "stream the rollout's events from its start until it ends",
    positionals: ["ID"],
    async run(api, input) {
      const id = input.positionals[0]!;
      // A 404 for an unknown rollout, rather than an empty stream.
      await answer(api, api.client.v1.rollouts[":id"].$get({ param: { id } }));
      await streamEvents(api, { rollout: id, after: "0" }, {
        json: input.json,
        // A rollout reaches a final state once, so its final event is its last.
        stop: (event) => FINAL_EVENTS.has(event.type),
      });
      return undefined;
    },
  },
  {
    name: "policy list",
    usage: "",
    summary: "loaded policies, and files that failed to load",
    run: (api) => answer(api, api.client.v1.policies.$get()),
    show(value) {
      const { items, failures } = value as { items: Row[]; failures: Row[] };
      const lines = [table(items, [
        ["NAME", (p) => p.name],
        ["SHA256", (p) => short(p.sha256)],
        ["COMMIT", (p) => short(p.commit)],
        ["SOURCE", (p) => p.source],
      ])];
      for (const failure of failures) lines.push(`failed: ${failure.source}`);
      return lines.join("\n");
    },
  },
  {
    name: "policy get",
    usage: "NAME",
    summary: "one policy, defaults filled in",
    positionals: ["NAME"],
    run: (api, input) =>
      answer(api, api.client.v1.policies[":name"].$get({ param: { name: input.positionals[0]! } })),
  },
  {
    name: "policy reload",
    usage: "",
    summary: "reload the policy directory",
    run: (api) => answer(api, api.client.v1.policies.reload.$post()),
  },
  {
    name: "token create",
    usage: "--name N --role viewer|operator|admin",
    summary: "a new API token (shown once)",
    options: { name: { type: "string" }, role: { type: "string" } },
    run(api, input) {
      const role = need(input, "role");
      if (role !== "viewer" && role !== "operator" && role !== "admin") {
        throw new UsageError(`Invalid --role "${role}": expected viewer, operator or admin`);
      }
      return answer(api, api.client.v1.tokens.$post({ json: { name: need(input, "name"), role } }));
    },
  },
  {
    name: "token list",
    usage: "",
    summary: "API tokens (never their secrets)",
    run: (api) => answer(api, api.client.v1.tokens.$get()),
    show: showPage([
      ["ID", (t) => t.id],
      ["NAME", (t) => t.name],
      ["ROLE", (t) => t.role],
      ["LAST USED", (t) => t.lastUsedAt],
      ["REVOKED", (t) => t.revokedAt],
    ]),
  },
  {
    name: "token revoke",
    usage: "ID",
    summary: "revoke a token",
    positionals: ["ID"],
    async run(api, input) {
      const id = input.positionals[0]!;
      await answer(api, api.client.v1.tokens[":id"].$delete({ param: { id } }));
      return { revoked: id };
    },
  },
  {
    name: "events",
    usage: "[--rollout ID] [--device ID] [--after N]",
    summary: "stream events as they happen (--after N: from event N on, 0 for all)",
    options: { rollout: { type: "string" }, device: { type: "string" }, after: { type: "string" } },
    async run(api, input) {
      const query = {
        rollout: str(input, "rollout"),
        device: str(input, "device"),
        after: str(input, "after"),
      };
      await streamEvents(api, query, { json: input.json });
      return undefined;
    },
  },
];
