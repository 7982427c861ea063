/** `ctl device ...`: register, list, inspect and remove devices. */
import type { RowState } from "../actors/mod.ts";
import { answer } from "./api.ts";
import { UsageError } from "./args.ts";
import {
  type CtlCommand,
  type CtlInput,
  need,
  PAGE,
  type Row,
  showPage,
  str,
  tags,
} from "./ctl_command.ts";
import { EVENT_PAGE, eventPageQuery, showEventPage } from "./ctl_events.ts";
import { type Column, record, short, table } from "./ctl_format.ts";

const DEVICE_COLUMNS: Column<Row>[] = [
  ["ID", (d) => d.id],
  ["CURRENT", (d) => short(d.currentDigest)],
  ["LAST SEEN", (d) => d.lastSeenAt],
  ["TAGS", (d) => d.tags],
];

export const HISTORY_COLUMNS: Column<Row>[] = [
  ["ROLLOUT", (h) => h.rolloutId],
  ["NAME", (h) => h.rolloutName],
  ["ROLLOUT STATE", (h) => h.rolloutState],
  ["ARTIFACT", (h) => short(h.artifactDigest)],
  ["STATE", (h) => h.state],
  ["ATTEMPT", (h) => h.attempt],
  ["UPDATED", (h) => h.updatedAt],
];

/** [SRUP-11] A device's key changes, oldest first. */
const KEY_ROTATION_COLUMNS: Column<Row>[] = [
  ["AT", (r) => r.at],
  ["OLD KEY", (r) => short(r.oldFingerprint)],
  ["NEW KEY", (r) => short(r.newFingerprint)],
  ["SEQUENCE", (r) => r.sequence],
];

const U64_MAX = (1n << 64n) - 1n;

/** `--floor N`: a decimal u64, sent as a string (a JSON number cannot hold every u64). */
function floor(input: CtlInput): string | null {
  const text = str(input, "floor");
  if (text === undefined) return null;
  if (!/^[0-9]{1,20}$/.test(text) || BigInt(text) > U64_MAX) {
    throw new UsageError(
      `Invalid --floor "${text}": expected a decimal integer from 0 to ${U64_MAX}`,
    );
  }
  return BigInt(text).toString();
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

/** The device commands. */
export const DEVICE_COMMANDS: CtlCommand[] = [
  {
    name: "device register",
    usage: "--id UUID --public-key BASE64 [--tag key=value ...] [--frame-version 1|2|3]",
    summary: "register one device (frame version 3: its agent takes signed releases)",
    options: {
      id: { type: "string" },
      "public-key": { type: "string" },
      tag: { type: "string", multiple: true },
      "frame-version": { type: "string" },
    },
    run(api, input) {
      const text = str(input, "frame-version");
      if (text !== undefined && !/^[123]$/.test(text)) {
        throw new UsageError(`Invalid --frame-version "${text}": expected 1, 2 or 3`);
      }
      return answer(
        api,
        api.client.v1.devices.$post({
          json: {
            id: need(input, "id"),
            publicKey: need(input, "public-key"),
            tags: tags(input),
            ...(text === undefined ? {} : { frameVersion: Number(text) }),
          },
        }),
      );
    },
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
        // `device provision` prints the frame version its agent speaks: carried as it is.
        ...(device.frameVersion === undefined
          ? {}
          : { frameVersion: device.frameVersion as number }),
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
    usage:
      "[--tag key=value ...] [--state S] [--id-prefix HEX] [--artifact DIGEST] [--online true|false] [--seen-after ISO] [--seen-before ISO] [--limit N] [--cursor C]",
    summary:
      "devices, filtered by tags (all must match), state in their latest rollout, id prefix, current artifact, connection and last seen",
    options: {
      tag: { type: "string", multiple: true },
      state: { type: "string" },
      "id-prefix": { type: "string" },
      artifact: { type: "string" },
      online: { type: "string" },
      "seen-after": { type: "string" },
      "seen-before": { type: "string" },
      ...PAGE,
    },
    run(api, input) {
      const online = str(input, "online");
      if (online !== undefined && online !== "true" && online !== "false") {
        throw new UsageError(`Invalid --online "${online}": expected true or false`);
      }
      return answer(
        api,
        api.client.v1.devices.$get({
          query: {
            tag: Object.entries(tags(input)).map(([key, value]) => `${key}=${value}`),
            // The API checks it, answering an unknown state with the list of states.
            state: str(input, "state") as RowState | undefined,
            q: str(input, "id-prefix"),
            artifact: str(input, "artifact"),
            online,
            seenAfter: str(input, "seen-after"),
            seenBefore: str(input, "seen-before"),
            limit: str(input, "limit"),
            cursor: str(input, "cursor"),
          },
        }),
      );
    },
    show: showPage(DEVICE_COLUMNS),
  },
  {
    name: "device get",
    usage: "ID",
    summary: "a device, its rollout history and its key rotations",
    positionals: ["ID"],
    run: (api, input) =>
      answer(api, api.client.v1.devices[":id"].$get({ param: { id: input.positionals[0]! } })),
    show(value) {
      const { history, keyRotations, ...device } = value as Row & {
        history: Row[];
        keyRotations: Row[];
      };
      return `${record(device)}\n\nhistory:\n${table(history, HISTORY_COLUMNS)}` +
        `\n\nkey rotations:\n${table(keyRotations ?? [], KEY_ROTATION_COLUMNS)}`;
    },
  },
  {
    name: "device tag",
    usage: "ID --tag key=value ...",
    summary: "replace a device's tags (a new match joins a running dynamic rollout)",
    options: { tag: { type: "string", multiple: true } },
    positionals: ["ID"],
    run: (api, input) =>
      answer(
        api,
        api.client.v1.devices[":id"].$patch({
          param: { id: input.positionals[0]! },
          json: { tags: tags(input) },
        }),
      ),
    show: (value) => record(value as Row),
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
    name: "device reset-sequence",
    usage: "ID [--floor N]",
    summary: "reset the sequence floor of a device locked out by its own sequence id (audited; " +
      "without --floor any sequence id is accepted next)",
    options: { floor: { type: "string" } },
    positionals: ["ID"],
    run: (api, input) =>
      answer(
        api,
        api.client.v1.devices[":id"]["sequence-reset"].$post({
          param: { id: input.positionals[0]! },
          json: { floor: floor(input) },
        }),
      ),
    show(value) {
      const reset = value as { id: string; previous: string | null; lastSequence: string | null };
      return `device ${reset.id}: sequence floor ${reset.previous ?? "none"} -> ${
        reset.lastSequence ?? "none"
      }`;
    },
  },
  {
    name: "device rollouts",
    usage: "ID [--limit N] [--cursor C]",
    summary: "every rollout the device was in, newest first",
    options: PAGE,
    positionals: ["ID"],
    run: (api, input) =>
      answer(
        api,
        api.client.v1.devices[":id"].rollouts.$get({
          param: { id: input.positionals[0]! },
          query: { limit: str(input, "limit"), cursor: str(input, "cursor") },
        }),
      ),
    show: showPage(HISTORY_COLUMNS),
  },
  {
    name: "device events",
    usage: "ID [--limit N] [--before N]",
    summary: "the device's past events, newest first (events --device ID streams new ones)",
    options: EVENT_PAGE,
    positionals: ["ID"],
    run: (api, input) =>
      answer(
        api,
        api.client.v1.devices[":id"].events.$get({
          param: { id: input.positionals[0]! },
          query: eventPageQuery(input),
        }),
      ),
    show: showEventPage,
  },
];
