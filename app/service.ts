/** The orchestrator service: database, broker, MQTT link, engine, HTTP API, wired and started. */
import { createApp } from "../http/app.ts";
import { ArtifactStore } from "../http/artifact_store.ts";
import { EventHub } from "../obs/event_hub.ts";
import { MetricsRegistry } from "../obs/metrics.ts";
import { streamedEvent } from "../http/routes/events.ts";
import {
  countRolloutsByState,
  createApiToken,
  findApiToken,
  GroupCommitWriter,
  listApiTokens,
  Maintenance,
  openDatabase,
  revokeApiToken,
  sequenceStore,
} from "../db/mod.ts";
import { createSequenceAllocator } from "../io/sequence.ts";
import {
  connectMqtt,
  createServerLink,
  PortInUseError,
  selectBroker,
  serverIdFromPublicKey,
} from "../mqtt/mod.ts";
import { LatencyHistogram, type Logger, silentLogger } from "../obs/mod.ts";
import { toBase64 } from "../srup/mod.ts";
import type { Clock } from "../actors/mod.ts";
import { wallClock } from "../orchestrator/clock.ts";
import { artifactDir, ConfigError, type ServiceConfig } from "../orchestrator/config.ts";
import { type HeapUsage, v8HeapUsage } from "../orchestrator/heap_budget.ts";
import { Orchestrator } from "../orchestrator/orchestrator.ts";
import { PolicyRegistry } from "../orchestrator/policy_registry.ts";
import { StoredSequenceTracker } from "../orchestrator/sequence_tracker.ts";
import { loadServerKey } from "../orchestrator/server_key.ts";

/** A running service. */
export interface Service {
  apiUrl: string;
  mqttUrl: string;
  embeddedBroker: boolean;
  serverId: string;
  publicKey: string;
  dataDir: string;
  database: string;
  /** Set on the start that created the first admin token: shown once. */
  adminToken?: string;
  policies: PolicyRegistry;
  orchestrator: Orchestrator;
  /** The HTTP app, for in-process requests (`app.request()`). */
  app: ReturnType<typeof createApp>;
  /** Shuts down gracefully; idempotent. */
  close(): Promise<void>;
}

/** Options of {@linkcode startService}. */
export interface StartOptions {
  /** Where start-up lines and warnings go; default stderr. */
  log?: (line: string) => void;
  /** Structured MQTT logs (frame.rejected and so on); default silent. */
  logger?: Logger;
  /** The engine's clock; default the wall clock (tests pass a scaled one). */
  clock?: Clock;
  /** The JS heap's limit and use, for the room check before a rollout; default V8's own. */
  heap?: () => HeapUsage;
}

const ADMIN_FROM_ENV = "admin-env";

/** Starts everything, or cleans up and throws (a ConfigError for a setting to change). */
export async function startService(
  config: ServiceConfig,
  options: StartOptions = {},
): Promise<Service> {
  const log = options.log ?? ((line: string) => console.error(line));
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  const close = async () => {
    for (const step of cleanup.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        log(`shutdown: ${(error as Error).message}`);
      }
    }
  };
  try {
    await Deno.mkdir(config.dataDir, { recursive: true });
    const key = await loadServerKey({ dataDir: config.dataDir, file: config.serverKeyFile });
    const serverId = await serverIdFromPublicKey(key.publicKey);

    const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
    cleanup.push(() => database.close());
    const { db } = database;
    const maintenance = new Maintenance(database, { log });
    maintenance.start();
    cleanup.push(() => maintenance.stop());
    const adminToken = await bootstrapAdmin(db, config.adminToken);

    const hub = new EventHub();
    cleanup.push(() => hub.closeAll());
    const dbLatency = new LatencyHistogram();
    const writer = new GroupCommitWriter(db, {
      onCommit: (info) => dbLatency.observe(info.ms),
      onEvents: (events) => {
        for (const event of events) hub.publish(streamedEvent(event));
      },
    });
    cleanup.push(() => writer.close());

    const policies = new PolicyRegistry(config.policyDir);
    await policies.load();
    for (const failure of policies.failures) {
      for (const issue of failure.issues) {
        log(
          `policy error: ${issue.source}${issue.line ? `:${issue.line}` : ""}: ${
            issue.path ? `${issue.path}: ` : ""
          }${issue.message}`,
        );
      }
    }

    const store = new ArtifactStore(artifactDir(config));
    await store.init();

    let broker;
    try {
      broker = await selectBroker({ url: config.mqttUrl, port: config.mqttPort });
    } catch (error) {
      if (error instanceof PortInUseError) {
        throw new ConfigError(
          `Port ${error.port} is in use, so the embedded MQTT broker cannot start: set FLOTILLA_MQTT_PORT to another port, or MQTT_URL to use a running broker`,
        );
      }
      throw error;
    }
    cleanup.push(() => broker.close());
    const logger = options.logger ?? silentLogger;
    const connection = await connectMqtt(broker.url, {
      clientId: `flotilla-${serverId}`,
      clean: false,
      caFile: config.mqttCa,
      certFile: config.mqttCert,
      keyFile: config.mqttKey,
      logger,
    });
    cleanup.push(() => connection.close());

    const tracker = new StoredSequenceTracker(db, writer);
    const orchestrator = new Orchestrator({
      db,
      writer,
      tracker,
      log,
      clock: options.clock,
      heap: options.heap,
    });
    cleanup.push(() => orchestrator.close());
    const link = await createServerLink(connection, {
      privateKey: key.privateKey,
      serverId,
      sequence: createSequenceAllocator(sequenceStore(db)),
      deviceKey: (id) => orchestrator.deviceKey(id),
      onResponse: (id, message) => orchestrator.handleResponse(id, message),
      tracker,
      // The engine's clock: the stall check compares its timeouts with the link's silence.
      now: () => (options.clock ?? wallClock).now(),
      logger,
    });
    cleanup.push(() => link.close());
    orchestrator.attach(link);
    const resumed = await orchestrator.recover();

    const metrics = new MetricsRegistry();
    registerMetrics(metrics, { db, orchestrator, link, connection, dbLatency });

    const scheme = config.tlsCert ? "https" : "http";
    let ready = false;
    // The listener is bound first, so an ephemeral port is known when the app is built.
    let handler: (request: Request) => Response | Promise<Response> = () =>
      new Response("Starting", { status: 503 });
    const abort = new AbortController();
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      const tls = config.tlsCert
        ? {
          cert: await Deno.readTextFile(config.tlsCert),
          key: await Deno.readTextFile(config.tlsKey!),
        }
        : {};
      server = Deno.serve({
        hostname: config.host,
        port: config.port,
        signal: abort.signal,
        onListen: () => {},
        ...tls,
      }, (request) => handler(request));
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new ConfigError(
          `Port ${config.port} is in use, so the HTTP API cannot start: set PORT to another port`,
        );
      }
      throw error;
    }
    cleanup.push(async () => {
      // SSE streams end first: the server waits for open responses before it finishes.
      hub.closeAll();
      abort.abort();
      await server.finished;
    });
    const apiUrl = `${scheme}://${hostForUrl(config.host)}:${server.addr.port}`;
    const app = createApp({
      db,
      writer,
      store,
      orchestrator,
      policies,
      hub,
      metrics,
      server: { serverId, publicKey: toBase64(key.publicKey), mqttUrl: broker.url },
      publicUrl: config.publicUrl ?? apiUrl,
      maxArtifactBytes: config.maxArtifactBytes,
      maxJsonBytes: config.maxJsonBytes,
      ready: () => ready && connection.connected,
    });
    handler = app.fetch;
    ready = true;
    if (resumed > 0) log(`resumed ${resumed} unfinished rollout(s)`);
    return {
      apiUrl,
      mqttUrl: broker.url,
      embeddedBroker: broker.embedded !== undefined,
      serverId,
      publicKey: toBase64(key.publicKey),
      dataDir: config.dataDir,
      database: database.location,
      adminToken,
      policies,
      orchestrator,
      app,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

function hostForUrl(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** Makes sure an admin can log in: FLOTILLA_ADMIN_TOKEN, or a token made on first start. */
async function bootstrapAdmin(
  db: Parameters<typeof findApiToken>[0],
  fromEnv: string | undefined,
): Promise<string | undefined> {
  if (fromEnv !== undefined) {
    const existing = await findApiToken(db, fromEnv);
    if (existing && !existing.revokedAt && existing.role === "admin") return undefined;
    // The variable changed: the token it named before stops working.
    for (const token of await listApiTokens(db)) {
      if (token.name === ADMIN_FROM_ENV && !token.revokedAt) await revokeApiToken(db, token.id);
    }
    await createApiToken(db, { name: ADMIN_FROM_ENV, role: "admin", plaintext: fromEnv });
    return undefined;
  }
  const live = (await listApiTokens(db)).filter((token) => !token.revokedAt);
  if (live.length > 0) return undefined;
  return (await createApiToken(db, { name: "admin", role: "admin" })).plaintext;
}

function registerMetrics(
  metrics: MetricsRegistry,
  parts: {
    db: Parameters<typeof countRolloutsByState>[0];
    orchestrator: Orchestrator;
    link: {
      rejections: { toJSON(): Record<string, number | undefined> };
      stalled: boolean;
      silentTimeouts: number;
    };
    connection: { latency: LatencyHistogram; pending: number; connected: boolean };
    dbLatency: LatencyHistogram;
  },
): void {
  metrics.collect(
    "flotilla_rollouts",
    "gauge",
    "Rollouts by state",
    async () =>
      Object.entries(await countRolloutsByState(parts.db)).map(([state, n]) => [{ state }, n]),
  );
  metrics.collect(
    "flotilla_rollout_devices",
    "gauge",
    "Devices of the rollouts running in this process, by state",
    () => Object.entries(parts.orchestrator.deviceCounts()).map(([state, n]) => [{ state }, n]),
  );
  metrics.collect(
    "flotilla_frames_rejected_total",
    "counter",
    "Received frames dropped, by reason",
    () => Object.entries(parts.link.rejections.toJSON()).map(([reason, n]) => [{ reason }, n ?? 0]),
  );
  metrics.collect(
    "flotilla_responses_stalled",
    "gauge",
    "1 while devices time out with the broker connection up and no RESPONSE arrives from any device",
    () => [[{}, parts.link.stalled ? 1 : 0]],
  );
  metrics.collect(
    "flotilla_response_silent_timeouts_total",
    "counter",
    "Devices that timed out while the broker connection was up and no device answered",
    () => [[{}, parts.link.silentTimeouts]],
  );
  metrics.collect(
    "flotilla_mqtt_connected",
    "gauge",
    "Whether the MQTT client is connected",
    () => [[
      {},
      parts.connection.connected ? 1 : 0,
    ]],
  );
  metrics.collect("flotilla_mqtt_pending", "gauge", "Publishes awaiting PUBACK", () => [[
    {},
    parts.connection.pending,
  ]]);
  metrics.histogram(
    "flotilla_mqtt_publish_seconds",
    "MQTT publish to PUBACK latency",
    () => [[{}, parts.connection.latency]],
  );
  metrics.histogram(
    "flotilla_db_commit_seconds",
    "Group-commit transaction latency",
    () => [[{}, parts.dbLatency]],
  );
  metrics.collect(
    "flotilla_process_memory_bytes",
    "gauge",
    "Process memory: resident set (PGlite's WASM memory counts only here), JS heap in use and its limit, and buffers V8 tracks outside the heap",
    () => {
      const usage = Deno.memoryUsage();
      return [
        [{ kind: "rss" }, usage.rss],
        [{ kind: "heap_used" }, usage.heapUsed],
        [{ kind: "heap_limit" }, v8HeapUsage().limit],
        [{ kind: "external" }, usage.external],
      ];
    },
  );
}
