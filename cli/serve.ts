/** `flotilla serve`: the orchestrator on embedded defaults, configured by environment variables. */
import { readConfig } from "../orchestrator/config.ts";
import { v8HeapUsage } from "../orchestrator/heap_budget.ts";
import { startService } from "../app/service.ts";
import { jsonLogger } from "../obs/mod.ts";
import { parse } from "./args.ts";

export const HELP = `Usage: flotilla serve

Runs the orchestrator. Settings come from the environment:
  FLOTILLA_DATA_DIR      data directory (PGlite, server key, artifacts)   default ./data
  DATABASE_URL           PostgreSQL instead of the embedded PGlite
  MQTT_URL               an external broker (mqtt:// or mqtts://) instead of the embedded one
  FLOTILLA_MQTT_PORT     port of the embedded broker                      default 1883
  FLOTILLA_MQTT_PROTOCOL_VERSION   4 (3.1.1) or 5   default 5, or 4 when the broker refuses 5
  FLOTILLA_MQTT_CA, FLOTILLA_MQTT_CERT, FLOTILLA_MQTT_KEY   TLS files for MQTT_URL
  FLOTILLA_SERVER_KEY    PEM file of the server's Ed25519 key             default <data>/server.key
  FLOTILLA_SERVER_NEXT_KEY   its next key, made by ctl server rotate-key  default <data>/server-next.key
  FLOTILLA_RELEASE_KEYS  release public keys (base64, comma-separated): rollouts then need a
                         signed manifest unless the policy says allowUnsigned (default none)
  FLOTILLA_POLICY_DIR    policy directory                                 default ./policies
  PORT, FLOTILLA_HOST    HTTP API port and address                        default 8080, 127.0.0.1
  FLOTILLA_PUBLIC_URL    base URL devices download artifacts from         default the API's URL
  FLOTILLA_TLS_CERT, FLOTILLA_TLS_KEY   HTTPS for the API and artifact downloads
  FLOTILLA_ADMIN_TOKEN   the admin token (otherwise one is made and printed on first start)
  FLOTILLA_ARTIFACT_STORE  db (PostgreSQL, every node sees it) or dir (files)
                         default dir; db with DATABASE_URL unless FLOTILLA_ARTIFACT_DIR is set
  FLOTILLA_ARTIFACT_DIR  directory of uploaded files                      default <data>/artifacts
  FLOTILLA_MAX_ARTIFACT_BYTES, FLOTILLA_MAX_JSON_BYTES   body caps   default 1 GiB, 64 MiB
  FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS   408 for a body that sends nothing this long   default 30000
  FLOTILLA_NODE_ID       this node's id in a cluster (needs DATABASE_URL)  default n1
  FLOTILLA_LEASE_TTL_MS  how long a node's rollout lease lasts unrenewed   default 10000
  FLOTILLA_LOG_MQTT=1    log MQTT events (frame.rejected, at most one a second per reason
                         and a summary; reconnects) as JSON lines`;

/** Runs `serve`; returns the exit code when the service stops. */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { help: { type: "boolean", short: "h" } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let service;
  let config;
  try {
    config = readConfig();
    service = await startService(config, {
      logger: config.logMqtt ? jsonLogger() : undefined,
    });
  } catch (error) {
    // A setting to change (ConfigError) or a failure to start: one line either way.
    console.error(`flotilla serve: ${(error as Error).message}`);
    return 1;
  }
  const lines = [
    `flotilla is running`,
    `  API        ${service.apiUrl}  (docs ${service.apiUrl}/docs)`,
    `  MQTT       ${service.mqttUrl}${service.embeddedBroker ? "  (embedded broker)" : ""}`,
    `  data       ${service.dataDir}`,
    `  database   ${service.database}`,
    `  server id  ${service.serverId}`,
    `  node       ${service.nodeId}${
      service.cluster ? `  (cluster: lease ${service.cluster.ttlMs} ms)` : "  (single node)"
    }`,
    `  public key ${service.publicKey}`,
    `  policies   ${
      service.policies.list().map((p) => p.policy.name).join(", ") ||
      `none: no *.yaml in ${config.policyDir} (FLOTILLA_POLICY_DIR)`
    }${
      service.policies.failures.length
        ? `  (${service.policies.failures.length} failed to load)`
        : ""
    }`,
    // V8's whole heap: the old space of --max-old-space-size plus the young generation (96 MiB).
    `  heap limit ${
      Math.round(v8HeapUsage().limit / 1024 / 1024)
    } MiB  (V8 heap: --max-old-space-size plus the young generation)`,
  ];
  if (service.adminToken) {
    lines.push(
      `  admin token ${service.adminToken}`,
      `  (shown once: keep it; only its hash is stored)`,
    );
  }
  console.log(lines.join("\n"));
  const stopped = Promise.withResolvers<string>();
  const onSignal = (name: string) => () => stopped.resolve(name);
  const signals: [Deno.Signal, () => void][] = [
    ["SIGINT", onSignal("SIGINT")],
    ["SIGTERM", onSignal("SIGTERM")],
  ];
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  const signal = await stopped.promise;
  console.log(`${signal}: shutting down`);
  for (const [name, handler] of signals) Deno.removeSignalListener(name, handler);
  await service.close();
  console.log("stopped");
  return 0;
}
