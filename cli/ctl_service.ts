/** `ctl server`, `health`, `cluster`, `me`, `states`, `policy ...` and `token ...`: the service and access to it. */
import { answer, reach } from "./api.ts";
import { UsageError } from "./args.ts";
import { type CtlCommand, need, type Row, showPage, str } from "./ctl_command.ts";
import { POLICY_AND_TARGETS, policyOf, showRollout, targetsOf } from "./ctl_rollouts.ts";
import { short, table, text } from "./ctl_format.ts";

/** What the service is and who the caller is. */
export const SERVICE_COMMANDS: CtlCommand[] = [
  {
    name: "server",
    usage: "",
    summary: "what a device needs to be provisioned, and which server key each device trusts",
    run: (api) => answer(api, api.client.v1.server.$get()),
    show(value) {
      const server = value as Row & { currentKey: Row; nextKey: Row | null; keys: Row[] };
      const rotation = server.rotation as Row | null;
      return [
        `server ${server.serverId}, MQTT ${(server.mqtt as Row).url}`,
        `public key ${server.publicKey}`,
        `current key ${server.currentKey.fingerprint}, next key ${
          server.nextKey?.fingerprint ?? "none"
        }${rotation ? `, rotation ${rotation.rollout} ${rotation.state}` : ""}`,
        table(server.keys, [
          ["KEY", (k) => k.fingerprint],
          ["ROLE", (k) => k.role],
          ["DEVICES", (k) => k.devices],
        ]),
      ].join("\n");
    },
  },
  {
    name: "server rotate-key",
    usage:
      "[--policy NAME | --policy-file FILE] [--all | --ids ID,ID,... | --tag key=value ...]\n" +
      "                 [--name N] [--description D] [--start-at 2026-12-06T02:00:00Z]",
    summary:
      "rotate the server key: a rollout sending each device the next key (made if none); run it again to catch up devices left on the old key",
    options: {
      ...POLICY_AND_TARGETS,
      name: { type: "string" },
      description: { type: "string" },
      "start-at": { type: "string" },
    },
    async run(api, input) {
      const chosen = input.values.all || str(input, "ids") !== undefined ||
        (input.values.tag as string[] | undefined)?.length;
      const policy = str(input, "policy") === undefined && str(input, "policy-file") === undefined
        ? undefined
        : await policyOf(input);
      const words = Object.fromEntries(
        (["name", "description", "start-at"] as const)
          .map((key) => [key === "start-at" ? "startAt" : key, str(input, key)])
          .filter(([, value]) => value !== undefined),
      );
      return await answer(
        api,
        api.client.v1.server["rotate-key"].$post({
          json: {
            ...(policy === undefined ? {} : { policy }),
            ...(chosen ? { targets: targetsOf(input) } : {}),
            ...words,
          },
        }),
      );
    },
    show: showRollout,
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
    name: "cluster",
    usage: "",
    summary: "the nodes sharing the database: heartbeats and the rollouts each owns",
    run: (api) => answer(api, api.client.v1.cluster.$get()),
    show(value) {
      const v = value as { node: string; mode: string; leaseTtlMs: number | null; nodes: Row[] };
      const head = `node ${v.node} (${v.mode}${
        v.leaseTtlMs === null ? "" : `, lease ${v.leaseTtlMs} ms`
      })`;
      return `${head}
${
        table(v.nodes, [
          ["NODE", (n) => n.id],
          ["STARTED", (n) => n.startedAt],
          ["HEARTBEAT", (n) => n.heartbeatAt],
          ["ROLLOUTS", (n) => n.rollouts],
        ])
      }`;
    },
  },
  {
    name: "me",
    usage: "",
    summary: "the token in use: its name and role",
    run: (api) => answer(api, api.client.v1.me.$get()),
  },
  {
    name: "states",
    usage: "",
    summary: "the vocabulary: device and rollout states, which are final, SRUP status bytes",
    run: (api) => answer(api, api.client.v1.states.$get()),
    show(value) {
      const v = value as Record<string, unknown> & { statuses: Row[] };
      const lines = Object.entries(v).filter(([key]) => key !== "statuses")
        .map(([key, list]) => `${key}: ${text(list)}`);
      return `${lines.join("\n")}\n\n${
        table(v.statuses, [["CODE", (s) => `0x${Number(s.code).toString(16).padStart(2, "0")}`], [
          "NAME",
          (s) => s.name,
        ], ["MEANING", (s) => s.text]])
      }`;
    },
  },
];

/** Policies and tokens. */
export const ACCESS_COMMANDS: CtlCommand[] = [
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
];
