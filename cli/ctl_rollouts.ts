/** `ctl rollout ...`: preview, create, follow and command rollouts. */
import { parse as parseYaml } from "yaml";
import { FINAL_EVENT_TYPE, type RowState } from "../actors/mod.ts";
import { formatIssue, parsePolicy, PolicyError } from "../policies/mod.ts";
import { answer } from "./api.ts";
import { UsageError } from "./args.ts";
import { upload } from "./ctl_artifacts.ts";
import {
  type CtlCommand,
  type CtlInput,
  PAGE,
  type Row,
  showPage,
  str,
  tags,
} from "./ctl_command.ts";
import { EVENT_PAGE, eventPageQuery, showEventPage, streamEvents } from "./ctl_events.ts";
import { type Column, short, table, text } from "./ctl_format.ts";

const ROLLOUT_COLUMNS: Column<Row>[] = [
  ["ID", (r) => r.id],
  ["STATE", (r) => r.state],
  ["STAGE", (r) => stageOf(r)],
  ["DEVICES", (r) => r.devices],
  ["POLICY", (r) => (r.policy as Row).name],
  ["ARTIFACT", (r) => r.artifact ? short((r.artifact as Row).digest) : "(rollback)"],
  ["CREATED", (r) => r.createdAt],
  // When a scheduled rollout starts (or started): empty for one started at creation.
  ["START AT", (r) => r.startAt ?? ""],
];

function stageOf(rollout: Row): string {
  const stages = rollout.stages as unknown[] | null;
  const stage = Number(rollout.stage) + 1;
  return stages ? `${stage} of ${stages.length}` : String(stage);
}

/**
 * When a scheduled rollout starts or started; one cancelled before its start (its last change
 * came before its start time) never started.
 */
function startLine(rollout: Row): string {
  if (rollout.state === "scheduled") return `starts at ${rollout.startAt}`;
  const startAt = Date.parse(String(rollout.startAt));
  const updatedAt = Date.parse(String(rollout.updatedAt));
  return updatedAt < startAt
    ? `was scheduled for ${rollout.startAt}: ${rollout.state} before it started`
    : `started at ${rollout.startAt}`;
}

/** A rollout as a few lines: what it is, where it is, its counts and its maintenance windows. */
export function showRollout(value: unknown): string {
  const r = value as Row;
  const lines = [
    `rollout ${r.id}${r.name ? ` "${r.name}"` : ""}: ${r.state}, stage ${
      stageOf(r)
    }, ${r.devices} devices`,
    r.artifact
      ? `  artifact ${(r.artifact as Row).digest}`
      : r.action === "rotate-key"
      ? `  rotate-key each device to trust server key ${r.serverKey}`
      : "  rollback each device back to its previous version",
    `  policy   ${(r.policy as Row).name} (sha256 ${short((r.policy as Row).sha256)})`,
    `  counts   ${text(r.counts)}`,
  ];
  if (r.rollbackOf) lines.push(`  rolls back rollout ${r.rollbackOf}`);
  const skips = r.skippedReasons as Record<string, number> | null | undefined;
  if (skips && Object.values(skips).some((n) => n > 0)) {
    // [SRUP-10] frame_version: registered with frame version 1, which has no KEY_ROTATE.
    lines.push(`  skipped  ${text(skips)}`);
  }
  const rolledBackBy = (r.rolledBackBy ?? []) as string[];
  if (rolledBackBy.length > 0) lines.push(`  rolled back by ${rolledBackBy.join(", ")}`);
  if (r.haltReason) lines.push(`  halted   ${(r.haltReason as Row).message}`);
  if (r.pauseReason) lines.push(`  paused   ${text(r.pauseReason)}`);
  if (r.bakeUntil) lines.push(`  bakes until ${r.bakeUntil}`);
  if (r.startAt) lines.push(`  ${startLine(r)}`);
  if (r.dynamic) lines.push(`  dynamic  ${r.joined} device(s) joined after creation`);
  const windows = r.windows as Row | null | undefined;
  if (windows) {
    const by = windows.by ? ` by ${windows.by}` : "";
    lines.push(
      `  windows${by}: ${windows.waiting} devices waiting_window, on close ${windows.onClose}` +
        (Number(windows.unmatched) > 0 ? `, ${windows.unmatched} with no window` : ""),
    );
    for (const group of windows.groups as Row[]) {
      const name = group.group ?? (windows.by ? "(other)" : "(all)");
      const when = group.open
        ? `open until ${group.nextClose ?? "never closes"}`
        : `next opens ${group.nextOpen ?? "never"}`;
      lines.push(`    ${name}: ${when}, ${group.waiting} waiting`);
    }
  }
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

const FINAL_EVENTS: ReadonlySet<string> = new Set(Object.values(FINAL_EVENT_TYPE));

/** The options that choose a policy and the devices, shared by `rollout create` and `preview`. */
/** The options that choose a policy and targets. */
export const POLICY_AND_TARGETS = {
  policy: { type: "string" },
  "policy-file": { type: "string" },
  all: { type: "boolean" },
  ids: { type: "string" },
  tag: { type: "string", multiple: true },
} as const;

/** The targets `--all`, `--ids` or `--tag` name; exactly one of them. */
export function targetsOf(
  input: CtlInput,
): { all: true } | { ids: string[] } | { tags: Record<string, string> } {
  const ids = str(input, "ids");
  const tagged = tags(input);
  const kinds = [input.values.all, ids, Object.keys(tagged).length].filter(Boolean).length;
  if (kinds !== 1) throw new UsageError("give exactly one of --all, --ids and --tag");
  if (input.values.all) return { all: true };
  if (ids) return { ids: ids.split(",").map((id) => id.trim()).filter(Boolean) };
  return { tags: tagged };
}

/** The policy `--policy` or `--policy-file` names; exactly one of them. */
export async function policyOf(input: CtlInput): Promise<string | Record<string, unknown>> {
  const name = str(input, "policy");
  const file = str(input, "policy-file");
  if ((name === undefined) === (file === undefined)) {
    throw new UsageError("give exactly one of --policy and --policy-file");
  }
  return file === undefined ? name! : await readPolicyFile(file);
}

/** The rollout commands. */
export const ROLLOUT_COMMANDS: CtlCommand[] = [
  {
    name: "rollout create",
    usage:
      "(--artifact FILE | --digest HEX [--url URL] | --rollback) (--policy NAME | --policy-file FILE)\n" +
      "                 (--all | --ids ID,ID,... | --tag key=value ...) [--name N] [--description D]\n" +
      "                 [--start-at 2026-12-06T02:00:00Z]",
    summary:
      "create and start a rollout (--artifact uploads the file first; --rollback sends devices back to their previous version; --start-at schedules it)",
    options: {
      rollback: { type: "boolean" },
      artifact: { type: "string" },
      digest: { type: "string" },
      url: { type: "string" },
      ...POLICY_AND_TARGETS,
      name: { type: "string" },
      description: { type: "string" },
      "start-at": { type: "string" },
    },
    async run(api, input) {
      const targets = targetsOf(input);
      const file = str(input, "artifact");
      const digest = str(input, "digest");
      const url = str(input, "url");
      const rollback = input.values.rollback === true;
      if (rollback && (file ?? digest ?? url) !== undefined) {
        throw new UsageError(
          "--rollback takes no --artifact, --digest or --url: each device goes back to its previous version",
        );
      }
      if (!rollback && (file === undefined) === (digest === undefined)) {
        throw new UsageError("give exactly one of --artifact, --digest and --rollback");
      }
      const policy = await policyOf(input);
      const name = str(input, "name");
      const description = str(input, "description");
      const startAt = str(input, "start-at");
      const words = {
        policy,
        targets,
        ...(name === undefined ? {} : { name }),
        ...(description === undefined ? {} : { description }),
        ...(startAt === undefined ? {} : { startAt }),
      };
      if (rollback) {
        return await answer(
          api,
          api.client.v1.rollouts.$post({ json: { action: "rollback", ...words } }),
        );
      }
      const artifact = file !== undefined
        ? { digest: String((await upload(api, file)).digest) }
        : url === undefined
        ? { digest: digest! }
        : { digest: digest!, url };
      return await answer(api, api.client.v1.rollouts.$post({ json: { artifact, ...words } }));
    },
    show: showRollout,
  },
  {
    name: "rollout preview",
    usage: "(--policy NAME | --policy-file FILE) (--all | --ids ID,ID,... | --tag key=value ...)",
    summary: "how many devices a rollout would select and each stage's size; creates nothing",
    options: POLICY_AND_TARGETS,
    async run(api, input) {
      const targets = targetsOf(input);
      const policy = await policyOf(input);
      return await answer(api, api.client.v1.rollouts.preview.$post({ json: { policy, targets } }));
    },
    show(value) {
      const preview = value as { devices: number; stages: Row[]; policy: Row; windows: Row | null };
      const lines = [
        `${preview.devices} devices, policy ${preview.policy.name}`,
        table(preview.stages, [["STAGE %", (s) => s.percent], ["DEVICES", (s) => s.devices]]),
      ];
      const windows = preview.windows;
      if (windows) {
        const groups = (windows.groups as Row[]).map((g) => `${g.group ?? "(other)"} ${g.devices}`);
        lines.push(`windows by ${windows.by}: ${groups.join(", ")}`);
        for (const u of windows.unmatched as Row[]) {
          const what = u.value === null ? `no ${windows.by} tag` : `${windows.by} "${u.value}"`;
          lines.push(`  no window: ${u.devices} devices with ${what} (creating answers no_window)`);
        }
      }
      return lines.join("\n");
    },
  },
  {
    name: "rollout events",
    usage: "ID [--limit N] [--before N]",
    summary: "the rollout's past events, newest first (rollout watch follows new ones)",
    options: EVENT_PAGE,
    positionals: ["ID"],
    run: (api, input) =>
      answer(
        api,
        api.client.v1.rollouts[":id"].events.$get({
          param: { id: input.positionals[0]! },
          query: eventPageQuery(input),
        }),
      ),
    show: showEventPage,
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
            // The API checks it, answering an unknown state with the list of states.
            state: str(input, "state") as RowState | undefined,
            limit: str(input, "limit"),
            cursor: str(input, "cursor"),
          },
        }),
      ),
    show: showPage([
      ["DEVICE", (d) => d.deviceId],
      ["STATE", (d) => d.state],
      ["WAITING", (d) => d.waitReason ?? ""],
      ["ATTEMPT", (d) => d.attempt],
      ["STATUS", (d) => d.lastStatus],
      ["UPDATED", (d) => d.updatedAt],
      // A rollback's target digest for each device; empty in an update.
      ["BACK TO", (d) => d.digest ? short(d.digest as string) : ""],
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
];
