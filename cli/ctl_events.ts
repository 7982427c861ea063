/** `ctl events` and the event pages: the events stream (SSE) and the history of a device or rollout. */
import { answer, type ApiTarget, reach } from "./api.ts";
import { type CtlCommand, type CtlInput, type Page, type Row, str } from "./ctl_command.ts";
import { type Column, table, text } from "./ctl_format.ts";

/** What the events stream sends. */
export interface StreamedEvent {
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
export async function streamEvents(
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

export const EVENT_PAGE = {
  limit: { type: "string" },
  before: { type: "string" },
} as const;

export function eventPageQuery(input: CtlInput) {
  return { limit: str(input, "limit"), before: str(input, "before") };
}

const EVENT_COLUMNS: Column<Row>[] = [
  ["ID", (e) => e.id],
  ["AT", (e) => e.at],
  ["TYPE", (e) => e.type],
  ["ROLLOUT", (e) => e.rolloutId],
  ["DEVICE", (e) => e.deviceId],
  ["ACTOR", (e) => e.actor],
];

export function showEventPage(value: unknown): string {
  const page = value as Page;
  return table(page.items, EVENT_COLUMNS, null) +
    (page.nextCursor === null || page.nextCursor === undefined
      ? ""
      : `\n(older: --before ${page.nextCursor})`);
}

/** The live events stream. */
export const EVENT_COMMANDS: CtlCommand[] = [
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
