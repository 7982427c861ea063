/** The orchestrator service: database, broker, MQTT link, engine, HTTP API, wired and started. */
import { type ClusterView, createApp, type ReadyReport, readyResponse } from "../http/app.ts";
import { type ArtifactStore, DirArtifactStore } from "../http/artifact_store.ts";
import { DbArtifactStore } from "../http/db_artifact_store.ts";
import { EventHub } from "../obs/event_hub.ts";
import { MetricsRegistry } from "../obs/metrics.ts";
import { streamedEvent } from "../http/routes/events.ts";
import { sql } from "drizzle-orm";
import {
  ConflictError,
  countRolloutsByState,
  createApiToken,
  type Database,
  type Db,
  describeDatabaseError,
  findApiToken,
  getServerState,
  GroupCommitWriter,
  isUnavailable,
  listApiTokens,
  listNodes,
  Maintenance,
  nodeApplicationName,
  openDatabase,
  replaceApiToken,
  resetPresence,
  sequenceStore,
  setServerState,
} from "../db/mod.ts";
import { createSequenceAllocator } from "../io/sequence.ts";
import {
  connectMqtt,
  createServerLink,
  deviceOfClientId,
  PortInUseError,
  selectBroker,
} from "../mqtt/mod.ts";
import { LatencyHistogram, type Logger, silentLogger } from "../obs/mod.ts";
import { toBase64 } from "../srup/mod.ts";
import type { Clock } from "../actors/mod.ts";
import { wallClock } from "../io/clock.ts";
import { ConfigError, type ServiceConfig } from "../orchestrator/config.ts";
import { type HeapUsage, v8HeapUsage } from "../orchestrator/heap_budget.ts";
import { Orchestrator } from "../orchestrator/orchestrator.ts";
import { Cluster } from "../orchestrator/cluster.ts";
import { PolicyRegistry } from "../orchestrator/policy_registry.ts";
import { StoredSequenceTracker } from "../orchestrator/sequence_tracker.ts";
import {
  loadNextServerKey,
  loadServerKey,
  makeNextServerKey,
  nextKeyPath,
  type ServerKey,
} from "../orchestrator/server_key.ts";
import { ServerKeyRing } from "../orchestrator/key_ring.ts";
import { DeviceKeys } from "../orchestrator/device_keys.ts";
import { releaseKeyChain } from "../orchestrator/release_key_sets.ts";

/** A running service. */
export interface Service {
  apiUrl: string;
  mqttUrl: string;
  embeddedBroker: boolean;
  serverId: string;
  publicKey: string;
  dataDir: string;
  database: string;
  /** Set on the start that created the first admin token (once everything listens): shown once. */
  adminToken?: string;
  policies: PolicyRegistry;
  orchestrator: Orchestrator;
  /** The HTTP app, for in-process requests (`app.request()`). */
  app: ReturnType<typeof createApp>;
  /** This node's id (FLOTILLA_NODE_ID). */
  nodeId: string;
  /** Cluster mode (PostgreSQL): leases, fencing and takeover; undefined on embedded PGlite. */
  cluster?: Cluster;
  /** Shuts down gracefully (releasing its leases); idempotent. */
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
  /** Gives up a start still waiting for the database or the broker: it cleans up and throws. */
  signal?: AbortSignal;
}

const ADMIN_FROM_ENV = "admin-env";
// GET /v1/cluster lists the nodes heard from within this long (a stopped node drops off).
const CLUSTER_NODES_WITHIN_MS = 60_000;
// [SRUP-10] server_state key of the server id, stored when the first key rotation begins.
const SERVER_ID_KEY = "server_id";
// A waiting line is printed once the database or broker has not answered for this long.
const WAIT_NOTICE_MS = 1_000;
const DB_RETRY_MIN_MS = 250;
const DB_RETRY_MAX_MS = 5_000;
// A readiness probe that takes longer than this counts as a database that is not up.
const DB_PING_MS = 2_000;

/**
 * Starts everything, or cleans up and throws (a ConfigError for a setting to change). HTTP is
 * bound first, so /healthz answers and /readyz says what the service still waits for (database,
 * MQTT broker) while it retries them.
 */
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
    const releaseKeySet = await releaseKeyChain(config);
    const nextPath = nextKeyPath({ dataDir: config.dataDir, file: config.serverNextKeyFile });
    const keys = new ServerKeyRing(key, await loadNextServerKey(nextPath));

    const starting: ReadyReport = { database: "waiting", mqtt: "waiting", recovery: "waiting" };
    let handler: (request: Request) => Response | Promise<Response> = (request) =>
      startingResponse(request, starting);
    const acceptErrors = new AcceptErrors(log);
    const { apiUrl, stop } = await listen(config, (request) => handler(request), acceptErrors);
    cleanup.push(stop);

    const database = await openWithRetry(
      config,
      { log, signal: options.signal, waiting: (why) => starting.database = why },
    );
    starting.database = "ok";
    cleanup.push(() => database.close());
    const { db } = database;
    // [SRUP-10] The id devices reply to is the first key's fingerprint, kept once a rotation
    // began: devices keep their topic when the key changes.
    const serverId = await getServerState(db, SERVER_ID_KEY) ?? key.fingerprint;
    const maintenance = new Maintenance(database, { log });
    maintenance.start();
    cleanup.push(() => maintenance.stop());

    const hub = new EventHub();
    cleanup.push(() => hub.closeAll());
    const dbLatency = new LatencyHistogram();
    // On PostgreSQL a node is one of a cluster (maybe of one): see docs/cluster.md.
    const clustered = config.databaseUrl !== undefined;
    let cluster: Cluster | undefined;
    const writer = new GroupCommitWriter(db, {
      onCommit: (info) => dbLatency.observe(info.ms),
      onEvents: (events) => {
        for (const event of events) hub.publish(streamedEvent(event));
        // The other nodes' streams show them too (docs/cluster.md).
        cluster?.announce(events.map((event) => event.id));
      },
      onFenced: (rolloutId, fence) => cluster?.fenced(rolloutId, fence.epoch),
      onError: (error, size, retryInMs) =>
        log(
          retryInMs === undefined
            ? `database: ${size} writes refused: ${describeDatabaseError(error)}`
            : `database: cannot commit ${size} writes, retrying in ${retryInMs} ms: ${
              describeDatabaseError(error)
            }`,
        ),
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

    const files = new DirArtifactStore(config.artifactDir);
    const store: ArtifactStore = config.artifactStore === "db"
      ? new DbArtifactStore(db, { fallback: files })
      : files;
    await store.init();

    // Presence is known only from the embedded broker's connection events; reset before it
    // listens, so no connection it reports is overwritten.
    await resetPresence(db, config.mqttUrl ? null : false);
    // Devices connected to the embedded broker, for a registration that comes after the connection.
    const connected = new Set<string>();
    let broker;
    try {
      broker = await selectBroker({
        url: config.mqttUrl,
        port: config.mqttPort,
        onAcceptError: (error) => acceptErrors.record("mqtt", error),
        onPresence(clientId, online) {
          const deviceId = deviceOfClientId(clientId);
          if (deviceId === undefined) return;
          if (online) connected.add(deviceId);
          else connected.delete(deviceId);
          writer.enqueue({ kind: "seen", deviceId, at: new Date(), online }).catch(() => {});
        },
      });
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
    const brokerUrl = redactUrl(broker.url);
    starting.mqtt = `connecting to broker at ${brokerUrl}`;
    const waiting = setTimeout(() => {
      starting.mqtt = `waiting for broker at ${brokerUrl}`;
      log(`waiting for MQTT broker at ${brokerUrl} (retrying)`);
    }, WAIT_NOTICE_MS);
    let connection;
    try {
      connection = await connectMqtt(broker.url, {
        // Every node signs as the one server, but each is its own client with a clean session:
        // a durable member's share of RESPONSEs would wait for it while it is down.
        clientId: clustered ? `flotilla-${serverId}-${config.nodeId}` : `flotilla-${serverId}`,
        clean: clustered,
        protocolVersion: config.mqttProtocolVersion,
        caFile: config.mqttCa,
        certFile: config.mqttCert,
        keyFile: config.mqttKey,
        logger,
        signal: options.signal,
      });
    } finally {
      clearTimeout(waiting);
    }
    starting.mqtt = "ok";
    cleanup.push(() => connection.close());

    const tracker = new StoredSequenceTracker(db, writer);
    const ids = sequenceStore(db);
    // A cluster's nodes share one mark: each reservation is one atomic statement.
    const sequence = createSequenceAllocator(
      clustered ? { load: ids.load, persist: ids.persist, reserve: ids.reserve } : ids,
    );
    if (clustered) {
      cluster = new Cluster({
        db,
        node: config.nodeId,
        ttlMs: config.leaseTtlMs,
        sequence,
        log,
        listenUrl: config.databaseUrl,
        onEvents: (events) => {
          for (const event of events) hub.publish(streamedEvent(event));
        },
      });
      const own = cluster;
      // Runs after the orchestrator stopped its runners: their last writes land, then the leases go.
      cleanup.push(async () => {
        await writer.flush();
        await own.close(true);
      });
    }
    const orchestrator = new Orchestrator({
      cluster,
      db,
      writer,
      tracker,
      log,
      clock: options.clock,
      heap: options.heap,
      releaseKeys: releaseKeySet.keys,
      keys,
    });
    cleanup.push(() => orchestrator.close());
    const deviceKeys = new DeviceKeys({
      db,
      tracker,
      current: (id) => orchestrator.deviceKey(id),
      adopted: (id, key) => orchestrator.adoptKey(id, key),
      announce: (event) => hub.publish(streamedEvent(event)),
      log,
    });
    const link = await createServerLink(connection, {
      privateKey: key.privateKey,
      signingKey: (id) => keys.signingKey(id),
      serverId,
      sequence,
      // Every node hears every RESPONSE and handles those of the rollouts it owns.
      shared: clustered ? false : undefined,
      deviceKey: (id) => orchestrator.deviceKey(id),
      onResponse: (id, message) => orchestrator.handleResponse(id, message),
      onDeviceKey: (id, message) => deviceKeys.handle(id, message),
      tracker,
      releaseKeySets: config.releaseKeySets,
      // The engine's clock: the stall check compares its timeouts with the link's silence.
      clock: options.clock ?? wallClock,
      logger,
    });
    cleanup.push(() => link.close());
    orchestrator.attach(link);
    const resumed = await orchestrator.recover();
    if (cluster) {
      await cluster.start({
        restore: (row) => orchestrator.restore(row),
        lost: (id) => orchestrator.lost(id),
        // Applied here, never forwarded on: the sender looked up this node as the owner.
        command: (id, command, actor) =>
          orchestrator.command(id, command, actor, { forward: false }),
        forget: (device) => orchestrator.forgetDevice(device, false),
      });
      const own = cluster;
      // Stops claiming first on shutdown, so nothing is taken over while runners stop.
      cleanup.push(() => own.close(false));
    }
    starting.recovery = "ok";

    const metrics = new MetricsRegistry();
    registerMetrics(metrics, {
      db,
      orchestrator,
      link,
      connection,
      dbLatency,
      writer,
      hub,
      cluster,
    });
    metrics.collect(
      "flotilla_accept_errors_total",
      "counter",
      "Connections refused because accepting them failed (EMFILE: out of open files), by listener",
      () => [[{ listener: "mqtt" }, acceptErrors.counts.mqtt], [
        { listener: "http" },
        acceptErrors.counts.http,
      ]],
    );
    const startedAt = new Date().toISOString();
    const clusterView = async (): Promise<ClusterView> => {
      if (!cluster) {
        return {
          node: config.nodeId,
          mode: "single",
          leaseTtlMs: null,
          nodes: [{
            id: config.nodeId,
            startedAt,
            heartbeatAt: new Date().toISOString(),
            rollouts: orchestrator.activeRollouts(),
          }],
        };
      }
      const nodes = await listNodes(db, CLUSTER_NODES_WITHIN_MS);
      return {
        node: config.nodeId,
        mode: "cluster",
        leaseTtlMs: config.leaseTtlMs,
        nodes: nodes.map((node) => ({
          id: node.id,
          startedAt: node.startedAt.toISOString(),
          heartbeatAt: node.heartbeatAt.toISOString(),
          rollouts: node.rollouts,
        })),
      };
    };

    const app = createApp({
      db,
      writer,
      store,
      orchestrator,
      policies,
      hub,
      metrics,
      server: {
        serverId,
        publicKey: toBase64(key.publicKey),
        mqttUrl: broker.url,
        rootReleaseKeys: (config.releaseKeys ?? []).map(toBase64),
        releaseKeySetVersion: releaseKeySet.version,
      },
      async nextKey(): Promise<ServerKey> {
        // The server id is fixed before any device hears of another key.
        await setServerState(db, SERVER_ID_KEY, serverId);
        if (keys.next) return keys.next;
        const next = await makeNextServerKey(nextPath);
        keys.setNext(next);
        log(
          `server key: next key ${next.fingerprint} ${
            next.created ? "made" : "read"
          } at ${next.path}`,
        );
        return next;
      },
      publicUrl: config.publicUrl ?? apiUrl,
      maxArtifactBytes: config.maxArtifactBytes,
      maxJsonBytes: config.maxJsonBytes,
      uploadIdleTimeoutMs: config.uploadIdleTimeoutMs,
      presence: config.mqttUrl ? undefined : (deviceId) => connected.has(deviceId),
      cluster: clusterView,
      ready: async () => ({
        database: writer.unavailable ?? await pingDatabase(db),
        mqtt: connection.connected ? "ok" : `disconnected from broker at ${brokerUrl}`,
      }),
    });
    handler = app.fetch;
    cleanup.push(async () => {
      // HTTP stops first on shutdown, SSE streams before it: the server waits for open responses.
      hub.closeAll();
      await stop();
    });
    if (resumed > 0) log(`resumed ${resumed} unfinished rollout(s)`);
    // Made only once everything listens: a start that fails earlier leaves no unseen token.
    const adminToken = await bootstrapAdmin(db, config.adminToken, log);
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
      nodeId: config.nodeId,
      cluster,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The first pause before the HTTP listener binds again; it doubles up to the maximum. */
const HTTP_RELISTEN_MIN_MS = 5;
const HTTP_RELISTEN_MAX_MS = 1000;

/**
 * Failed accepts on the service's listeners (`mqtt`, `http`), counted for /metrics and logged:
 * the first of a run at once, then at most one line a second with the count since the last.
 */
export class AcceptErrors {
  readonly counts: Record<"mqtt" | "http", number> = { mqtt: 0, http: 0 };
  #log: (line: string) => void;
  #now: () => number;
  #lastLog = new Map<string, number>();
  #unlogged = new Map<string, number>();

  constructor(log: (line: string) => void, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  record(listener: "mqtt" | "http", error: unknown): void {
    this.counts[listener]++;
    const unlogged = (this.#unlogged.get(listener) ?? 0) + 1;
    const last = this.#lastLog.get(listener);
    if (last !== undefined && this.#now() - last < 1000) {
      this.#unlogged.set(listener, unlogged);
      return;
    }
    this.#lastLog.set(listener, this.#now());
    this.#unlogged.set(listener, 0);
    const message = error instanceof Error ? error.message : String(error);
    this.#log(
      `${listener} listener: accept failed (${message}); refused ${unlogged} connection(s), ${
        this.counts[listener]
      } in all; still listening (raise the open-file limit: docs/operations.md, Open files)`,
    );
  }
}

/**
 * Binds the HTTP listener; the handler is looked up per request, so it can change once ready.
 * Deno.serve ends its accept loop when an accept fails (EMFILE: out of open files), so the
 * listener is bound again after a short pause, and again while that fails, instead of the
 * process ending on the rejected `finished`.
 */
async function listen(
  config: ServiceConfig,
  handler: (request: Request) => Response | Promise<Response>,
  acceptErrors: AcceptErrors,
): Promise<{ apiUrl: string; stop(): Promise<void> }> {
  const scheme = config.tlsCert ? "https" : "http";
  const abort = new AbortController();
  const tls = config.tlsCert
    ? {
      cert: await Deno.readTextFile(config.tlsCert),
      key: await Deno.readTextFile(config.tlsKey!),
    }
    : {};
  const serve = (port: number) =>
    Deno.serve({
      hostname: config.host,
      port,
      signal: abort.signal,
      onListen: () => {},
      ...tls,
    }, handler);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = serve(config.port);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new ConfigError(
        `Port ${config.port} is in use, so the HTTP API cannot start: set PORT to another port`,
      );
    }
    throw error;
  }
  const port = server.addr.port;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  const supervise = async (current: Deno.HttpServer<Deno.NetAddr>) => {
    try {
      await current.finished;
      return;
    } catch (error) {
      if (abort.signal.aborted) return;
      acceptErrors.record("http", error);
    }
    let delay = HTTP_RELISTEN_MIN_MS;
    while (!abort.signal.aborted) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        retry = setTimeout(resolve, delay);
      });
      if (abort.signal.aborted) return;
      try {
        server = serve(port);
        return supervise(server);
      } catch (error) {
        acceptErrors.record("http", error);
        delay = Math.min(delay * 2, HTTP_RELISTEN_MAX_MS);
      }
    }
  };
  const supervising = supervise(server);
  return {
    apiUrl: `${scheme}://${hostForUrl(config.host)}:${port}`,
    async stop() {
      abort.abort();
      clearTimeout(retry);
      wake?.();
      await supervising;
      await server.finished.catch(() => {});
    },
  };
}

/** What the listener answers before the service is up: alive, not ready, and why. */
function startingResponse(request: Request, report: ReadyReport): Response {
  const path = new URL(request.url).pathname;
  if (path === "/healthz") return Response.json({ status: "ok" });
  if (path === "/readyz") return readyResponse({ ...report }, true);
  const waiting = Object.entries(report).filter(([, state]) => state !== "ok")
    .map(([part, state]) => `${part}: ${state}`).join("; ");
  return Response.json({
    error: { code: "starting", message: `The service is starting: ${waiting}`, details: null },
  }, { status: 503, headers: { "Retry-After": "2" } });
}

/** Opens the database, waiting and retrying while it cannot be reached; other errors throw. */
async function openWithRetry(
  config: ServiceConfig,
  options: { log: (line: string) => void; waiting: (why: string) => void; signal?: AbortSignal },
): Promise<Database> {
  let delay = DB_RETRY_MIN_MS;
  let said: string | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      return await openDatabase({
        url: config.databaseUrl,
        dataDir: config.dataDir,
        // A node frozen mid-commit must not keep a rollout's row locked past its lease.
        idleInTransactionMs: config.databaseUrl ? config.leaseTtlMs : undefined,
        applicationName: config.databaseUrl ? nodeApplicationName(config.nodeId) : undefined,
      });
    } catch (error) {
      if (!isUnavailable(error)) throw error;
      const cause = describeDatabaseError(error);
      options.waiting(`waiting: ${cause}`);
      if (said !== cause) {
        said = cause;
        options.log(
          `waiting for database at ${
            config.databaseUrl ? redactUrl(config.databaseUrl) : config.dataDir
          } (retrying): ${cause}`,
        );
      }
      await sleep(delay, options.signal);
      delay = Math.min(DB_RETRY_MAX_MS, delay * 2);
    }
  }
}

/** Waits `ms`, or rejects with the signal's reason once it aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** "ok" when the database answers a trivial query in time, else why not. */
async function pingDatabase(db: Db): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      db.execute(sql`select 1`).then(() => "ok"),
      new Promise<string>((resolve) =>
        timer = setTimeout(() => resolve(`no answer within ${DB_PING_MS} ms`), DB_PING_MS)
      ),
    ]);
  } catch (error) {
    return describeDatabaseError(error);
  } finally {
    clearTimeout(timer);
  }
}

/** A URL without its password, for lines and /readyz. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.href.replace(/\/$/, "");
  } catch {
    return "(invalid URL)";
  }
}

function hostForUrl(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * Makes sure an admin can log in: FLOTILLA_ADMIN_TOKEN, or a token made on the first start. A
 * variable naming a revoked token is said so, not revived: whoever revoked it meant it. Nodes of a
 * cluster start together on one database with the same settings: the node that loses the race to
 * record the token (or to make the first one) finds it made, rather than failing to start.
 */
export async function bootstrapAdmin(
  db: Db,
  fromEnv: string | undefined,
  log: (line: string) => void,
): Promise<string | undefined> {
  if (fromEnv !== undefined) {
    const existing = await findApiToken(db, fromEnv, { revoked: true });
    if (existing?.revokedAt) {
      log(
        `FLOTILLA_ADMIN_TOKEN: its token "${existing.name}" was revoked at ${existing.revokedAt.toISOString()}, so it does not log in: set a new value, or mint an admin token with "deno task admin-token"`,
      );
      return undefined;
    }
    if (existing && existing.role !== "admin") {
      log(
        `FLOTILLA_ADMIN_TOKEN: its token "${existing.name}" has role "${existing.role}", not "admin": set a new value`,
      );
      return undefined;
    }
    if (existing) return undefined;
    // The variable changed: the token it named before stops working.
    try {
      await replaceApiToken(db, { name: ADMIN_FROM_ENV, role: "admin", plaintext: fromEnv });
    } catch (error) {
      // Another node recorded the same token first: it logs in as it should.
      if (!(error instanceof ConflictError)) throw error;
      const made = await findApiToken(db, fromEnv);
      if (made?.role !== "admin") throw error;
    }
    return undefined;
  }
  const live = (await listApiTokens(db)).filter((token) => !token.revokedAt);
  if (live.length > 0) return undefined;
  try {
    return (await createApiToken(db, { name: "admin", role: "admin" })).plaintext;
  } catch (error) {
    // Another node made the first admin token at the same moment and printed it.
    if (error instanceof ConflictError) return undefined;
    throw error;
  }
}

function registerMetrics(
  metrics: MetricsRegistry,
  parts: {
    db: Parameters<typeof countRolloutsByState>[0];
    orchestrator: Orchestrator;
    link: {
      withheld: number;
      rejections: { toJSON(): Record<string, number | undefined> };
      stalled: boolean;
      silentTimeouts: number;
    };
    connection: { latency: LatencyHistogram; pending: number; connected: boolean };
    dbLatency: LatencyHistogram;
    writer: GroupCommitWriter;
    hub: EventHub;
    cluster: Cluster | undefined;
  },
): void {
  const { cluster } = parts;
  if (cluster) {
    metrics.collect(
      "flotilla_cluster_leases",
      "gauge",
      "Rollout leases this node holds",
      () => [[{ node: cluster.node }, cluster.leases]],
    );
    metrics.collect(
      "flotilla_cluster_takeovers_total",
      "counter",
      "Rollouts this node claimed after another node's lease expired",
      () => [[{ node: cluster.node }, cluster.takeovers]],
    );
    metrics.collect(
      "flotilla_cluster_leases_lost_total",
      "counter",
      "Leases this node found taken over by another node (it stopped driving those rollouts)",
      () => [[{ node: cluster.node }, cluster.lostLeases]],
    );
    metrics.collect(
      "flotilla_cluster_fenced_writes_total",
      "counter",
      "State writes refused because this node no longer held the rollout's lease at their epoch",
      () => [[{ node: cluster.node }, parts.writer.fencedWrites]],
    );
    metrics.collect(
      "flotilla_cluster_frames_withheld_total",
      "counter",
      "Frames not published because the rollout's lease may have lapsed by this node's clock",
      () => [[{ node: cluster.node }, parts.link.withheld]],
    );
    metrics.collect(
      "flotilla_cluster_responses_ignored_total",
      "counter",
      "RESPONSEs for devices of rollouts another node owns (every node hears every RESPONSE)",
      () => [[{ node: cluster.node }, parts.orchestrator.ignoredResponses]],
    );
  }
  metrics.collect(
    "flotilla_rollouts",
    "gauge",
    "Rollouts by state (absent while the database is unavailable)",
    async () => {
      try {
        return Object.entries(await countRolloutsByState(parts.db)).map((
          [state, n],
        ) => [{ state }, n]);
      } catch (error) {
        // The other metrics still render; /readyz and the writer's log say why.
        if (isUnavailable(error)) return [];
        throw error;
      }
    },
  );
  metrics.collect(
    "flotilla_db_commit_failures_total",
    "counter",
    "Group-commit transactions that failed (retried ones included)",
    () => [[{}, parts.writer.failedCommits]],
  );
  metrics.collect(
    "flotilla_db_writes_waiting",
    "gauge",
    "Writes queued for the database, those held while it is unavailable included",
    () => [[{}, parts.writer.waiting]],
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
    "flotilla_recovery_responses_dropped_total",
    "counter",
    "RESPONSEs dropped because too many arrived while rollouts were being recovered",
    () => [[{}, parts.orchestrator.earlyDropped]],
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
    "flotilla_event_streams",
    "gauge",
    "Open /v1/events streams",
    () => [[{}, parts.hub.size]],
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
