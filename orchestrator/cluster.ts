/**
 * This node's part in a cluster: its heartbeat, the rollout leases it holds, their renewal, and
 * whether it may still act for a rollout by its own monotonic clock. See docs/cluster.md.
 */
import {
  claimRollout,
  type Db,
  describeDatabaseError,
  endStuckSessions,
  type Event,
  type Fence,
  heartbeat,
  listClaimable,
  listenChannel,
  loadEvents,
  type NotifyChannel,
  releaseLeases,
  renewLeases,
  type Rollout,
} from "../db/mod.ts";
import { RolloutCommandError, type RolloutCommandErrorCode } from "../actors/mod.ts";
import type { SequenceAllocator } from "../io/sequence.ts";

/** A lease as a runner sees it: the fence of its writes, and whether it may still publish. */
export interface RolloutLease {
  fence: Fence;
  /** False once the lease may have expired by this node's monotonic clock (with a margin). */
  valid(): boolean;
}

/** What a cluster node needs. */
export interface ClusterOptions {
  db: Db;
  /** FLOTILLA_NODE_ID. */
  node: string;
  /** FLOTILLA_LEASE_TTL_MS. */
  ttlMs: number;
  /** The server link's ids: a fresh block is reserved after every claim (see docs/cluster.md). */
  sequence: SequenceAllocator;
  log?: (line: string) => void;
  /** Monotonic milliseconds; default `performance.now()`. */
  now?: () => number;
  /**
   * The PostgreSQL URL for a LISTEN connection of its own: commands forwarded to a rollout's
   * owner, and committed events relayed to every node's streams. Without it neither is done.
   */
  listenUrl?: string;
  /** Events another node committed, loaded from the database, in id order (SSE relay). */
  onEvents?: (events: Event[]) => void;
}

/** An operator command, as forwarded to the node that owns the rollout. */
export type ForwardedCommand = "pause" | "resume" | "cancel" | "promote";

/** The owner of a rollout did not answer a forwarded command in time (or there is none now). */
export class OwnerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OwnerUnavailableError";
  }
}

/** What travels on the cluster channel. */
type Message =
  | { t: "cmd"; to: string; id: string; command: ForwardedCommand; actor: string; reply: string }
  | { t: "ack"; reply: string; ok: boolean; code?: RolloutCommandErrorCode; state?: string }
  | { t: "ev"; from: string; ids: number[] }
  | { t: "forget"; from: string; device: string };

const CHANNEL = "flotilla_cluster";
// A forwarded command the owner has not answered within this long is reported unavailable.
const FORWARD_TIMEOUT_MS = 2_000;
// Event ids per notification: about 17 bytes each, well within PostgreSQL's 8000-byte payload.
const IDS_PER_NOTIFY = 400;

/** What the cluster asks of the orchestrator. */
export interface ClusterDriver {
  /** Drives a rollout this node just claimed, from the database. */
  restore(row: Rollout): Promise<void>;
  /** Stops driving a rollout at once: its lease is lost. */
  lost(id: string): void;
  /** Applies a command another node forwarded here (RolloutCommandError when it does not apply). */
  command(id: string, command: ForwardedCommand, actor: string): Promise<boolean>;
  /** Drops what this node cached of a device (key, sequence floor): another node changed it. */
  forget(device: string): void;
}

interface Held {
  epoch: number;
  /** Monotonic time after which this node no longer acts for the rollout. */
  validUntil: number;
}

/** This node's leases and loops. */
export class Cluster {
  readonly node: string;
  readonly ttlMs: number;
  readonly #db: Db;
  readonly #sequence: SequenceAllocator;
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  readonly #held = new Map<string, Held>();
  #driver: ClusterDriver | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #scanning = false;
  #channel: NotifyChannel | undefined;
  readonly #listenUrl: string | undefined;
  readonly #onEvents: ((events: Event[]) => void) | undefined;
  readonly #replies = new Map<string, (message: Message & { t: "ack" }) => void>();
  /** Relayed event loads, one after another so streams keep id order. */
  #relay: Promise<void> = Promise.resolve();
  #renewing = false;
  #closed = false;
  /** Rollouts claimed from another node (or from none) while this node ran. */
  takeovers = 0;
  /** Leases found taken over by another node. */
  lostLeases = 0;

  constructor(options: ClusterOptions) {
    this.node = options.node;
    this.ttlMs = options.ttlMs;
    this.#db = options.db;
    this.#sequence = options.sequence;
    this.#log = options.log ?? ((line) => console.error(line));
    this.#now = options.now ?? (() => performance.now());
    this.#listenUrl = options.listenUrl;
    this.#onEvents = options.onEvents;
  }

  /** Leases held now. */
  get leases(): number {
    return this.#held.size;
  }

  /** Whether this node holds the rollout's lease (by its own bookkeeping). */
  owns(id: string): boolean {
    return this.#held.has(id);
  }

  // Stop acting a tenth of the lease before it can expire: covers clock-rate drift between nodes.
  #validFor(sentAt: number): number {
    return sentAt + this.ttlMs - this.ttlMs / 10;
  }

  /** The lease of a rollout this node holds, for its runner; undefined when it holds none. */
  lease(id: string): RolloutLease | undefined {
    const held = this.#held.get(id);
    if (!held) return undefined;
    const { epoch } = held;
    return {
      fence: { node: this.node, epoch },
      valid: () => {
        const now = this.#held.get(id);
        return now?.epoch === epoch && this.#now() < now.validUntil;
      },
    };
  }

  /** Records the lease of a rollout this node just created (epoch 1), asked for at `sentAt`. */
  adopt(id: string, epoch: number, sentAt: number): void {
    this.#held.set(id, { epoch, validUntil: this.#validFor(sentAt) });
  }

  /** The monotonic time to pass to {@linkcode adopt}: taken before the statement that claims. */
  mark(): number {
    return this.#now();
  }

  /** Reserves a fresh block of sequence ids: every id sent after this is above any sent before. */
  async fresh(): Promise<void> {
    await this.#sequence.fresh?.();
  }

  /**
   * Claims a rollout (expired, unowned, or with `reclaimOwn` this node id's own); the row at its
   * new epoch once a fresh id block is reserved, or undefined when another node holds it.
   */
  async claim(id: string, reclaimOwn = false): Promise<Rollout | undefined> {
    const sentAt = this.#now();
    const row = await claimRollout(this.#db, id, {
      node: this.node,
      ttlMs: this.ttlMs,
      reclaimOwn,
    });
    if (!row) return undefined;
    this.#held.set(id, { epoch: row.leaseEpoch, validUntil: this.#validFor(sentAt) });
    // After the claim: no id from a block reserved before it is sent for this rollout's devices.
    await this.fresh();
    return row;
  }

  /** Forgets a lease without touching the database (its rollout finished, or it was lost). */
  drop(id: string): void {
    this.#held.delete(id);
  }

  /** Starts the heartbeat, renewal and takeover loops, driving `driver`. */
  async start(driver: ClusterDriver): Promise<void> {
    this.#driver = driver;
    await heartbeat(this.#db, this.node, true);
    if (this.#listenUrl) {
      this.#channel = await listenChannel(this.#listenUrl, CHANNEL, (p) => this.#receive(p));
    }
    const every = Math.max(1, Math.floor(this.ttlMs / 3));
    this.#timers.push(setInterval(() => this.renew(), every));
    this.#timers.push(setInterval(() => this.scan(), Math.max(1, Math.floor(this.ttlMs / 2))));
  }

  /** Extends every lease held; a lease another node took is dropped and its rollout stopped. */
  async renew(): Promise<void> {
    if (this.#renewing || this.#closed) return;
    this.#renewing = true;
    try {
      const sentAt = this.#now();
      await heartbeat(this.#db, this.node);
      const asked = [...this.#held].map(([id, held]) => ({ id, epoch: held.epoch }));
      const renewed = await renewLeases(this.#db, this.node, asked, this.ttlMs);
      for (const { id, epoch } of asked) {
        const held = this.#held.get(id);
        if (held?.epoch !== epoch) continue;
        if (renewed.has(id)) {
          held.validUntil = this.#validFor(sentAt);
          continue;
        }
        this.#lose(id, `its lease at epoch ${epoch} was taken over`);
      }
    } catch (error) {
      // The leases lapse by the monotonic clock meanwhile: sends stop on their own.
      this.#log(`cluster: cannot renew leases: ${describeDatabaseError(error)}`);
    } finally {
      this.#renewing = false;
    }
  }

  /** Stops driving a rollout whose writes were refused at `epoch` (another node claimed it). */
  fenced(id: string, epoch: number): void {
    if (this.#held.get(id)?.epoch !== epoch) return;
    this.#lose(id, `a write at epoch ${epoch} was refused by its fence`);
  }

  #lose(id: string, why: string): void {
    this.#held.delete(id);
    this.lostLeases++;
    this.#log(`rollout ${id}: lost to another node (${why}); stopped driving it`);
    this.#driver?.lost(id);
  }

  /** Claims and restores the rollouts whose leases expired (a dead or frozen node's). */
  async scan(): Promise<number> {
    if (this.#scanning || this.#closed || !this.#driver) return 0;
    this.#scanning = true;
    let taken = 0;
    try {
      const claimable = await listClaimable(this.#db, { node: this.node, ttlMs: this.ttlMs });
      for (const { id, owner } of claimable) {
        if (this.#closed) break;
        // Its own lease that lapsed (the database was away): renewal keeps it if no other node
        // took it; claiming it would restart a runner that is still driving it.
        if (this.#held.has(id)) continue;
        const row = await this.claim(id);
        if (!row) {
          // Expired yet locked: its owner froze inside a transaction. Its sessions are ended (its
          // writes would be fenced anyway), so the next scan can claim it.
          if (owner !== null && owner !== this.node) {
            const ended = await endStuckSessions(this.#db, owner, this.ttlMs);
            if (ended > 0) {
              this.#log(
                `rollout ${id}: ended ${ended} database session(s) of node ${owner}, stuck in a transaction past its lease`,
              );
            }
          }
          continue;
        }
        taken++;
        this.takeovers++;
        this.#log(`rollout ${id}: taken over by node ${this.node} at epoch ${row.leaseEpoch}`);
        await this.#driver.restore(row);
      }
    } catch (error) {
      this.#log(`cluster: cannot take over rollouts: ${describeDatabaseError(error)}`);
    } finally {
      this.#scanning = false;
    }
    return taken;
  }

  /**
   * Sends a command to `owner`, the node holding the rollout's lease, and waits for its answer:
   * true when applied, false when the rollout no longer runs there; RolloutCommandError when it
   * does not apply, OwnerUnavailableError when no answer comes.
   */
  async forward(
    owner: string,
    id: string,
    command: ForwardedCommand,
    actor: string,
  ): Promise<boolean> {
    const channel = this.#channel;
    if (!channel) {
      throw new OwnerUnavailableError(
        `Cannot ${command} rollout: node "${owner}" runs it and this node cannot reach it`,
      );
    }
    const reply = crypto.randomUUID();
    const answered = Promise.withResolvers<(Message & { t: "ack" }) | undefined>();
    this.#replies.set(reply, answered.resolve);
    const timer = setTimeout(() => answered.resolve(undefined), FORWARD_TIMEOUT_MS);
    try {
      await channel.notify(JSON.stringify({ t: "cmd", to: owner, id, command, actor, reply }));
      const ack = await answered.promise;
      if (!ack) {
        throw new OwnerUnavailableError(
          `Cannot ${command} rollout: its owner node "${owner}" did not answer within ${FORWARD_TIMEOUT_MS} ms: try again`,
        );
      }
      if (ack.code !== undefined) {
        throw new RolloutCommandError(ack.code, command, ack.state ?? "unknown");
      }
      return ack.ok;
    } finally {
      clearTimeout(timer);
      this.#replies.delete(reply);
    }
  }

  /** Tells the other nodes which events this node committed, so their streams show them. */
  announce(ids: readonly number[]): void {
    const channel = this.#channel;
    if (!channel || this.#closed) return;
    for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) {
      const payload = JSON.stringify({
        t: "ev",
        from: this.node,
        ids: ids.slice(i, i + IDS_PER_NOTIFY),
      });
      channel.notify(payload).catch((error) =>
        this.#log(`cluster: cannot announce events: ${describeDatabaseError(error)}`)
      );
    }
  }

  /** Tells the other nodes to drop what they cached of a device (removed, or its floor reset). */
  forgetEverywhere(device: string): void {
    this.#channel?.notify(JSON.stringify({ t: "forget", from: this.node, device })).catch((error) =>
      this.#log(
        `cluster: cannot tell the nodes about device ${device}: ${describeDatabaseError(error)}`,
      )
    );
  }

  #receive(payload: string): void {
    let message: Message;
    try {
      message = JSON.parse(payload);
    } catch {
      this.#log(`cluster: dropped a notification that is not JSON (${payload.length} bytes)`);
      return;
    }
    switch (message?.t) {
      case "ack":
        this.#replies.get(message.reply)?.(message);
        return;
      case "cmd":
        if (message.to === this.node) this.#apply(message);
        return;
      case "forget":
        if (message.from !== this.node && typeof message.device === "string") {
          this.#driver?.forget(message.device);
        }
        return;
      case "ev":
        if (message.from === this.node || !this.#onEvents || !Array.isArray(message.ids)) return;
        this.#relayEvents(message.ids.filter((id) => Number.isSafeInteger(id)));
        return;
    }
  }

  #relayEvents(ids: number[]): void {
    const onEvents = this.#onEvents!;
    this.#relay = this.#relay.then(async () => {
      try {
        onEvents(await loadEvents(this.#db, ids));
      } catch (error) {
        this.#log(`cluster: cannot relay events: ${describeDatabaseError(error)}`);
      }
    });
  }

  async #apply(message: Message & { t: "cmd" }): Promise<void> {
    let ack: Message & { t: "ack" };
    try {
      const ok = await this.#driver!.command(message.id, message.command, message.actor);
      ack = { t: "ack", reply: message.reply, ok };
    } catch (error) {
      ack = error instanceof RolloutCommandError
        ? { t: "ack", reply: message.reply, ok: false, code: error.code, state: error.state }
        : { t: "ack", reply: message.reply, ok: false };
      if (!(error instanceof RolloutCommandError)) {
        this.#log(
          `rollout ${message.id}: forwarded ${message.command} failed: ${
            describeDatabaseError(error)
          }`,
        );
      }
    }
    await this.#channel?.notify(JSON.stringify(ack)).catch(() => {});
  }

  /** Stops the loops; with `release`, gives up every lease at once so others take over now. */
  async close(release: boolean): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    if (!release) return;
    await this.#channel?.close().catch(() => {});
    this.#channel = undefined;
    this.#held.clear();
    try {
      const n = await releaseLeases(this.#db, this.node);
      if (n > 0) this.#log(`cluster: released ${n} lease(s)`);
    } catch (error) {
      this.#log(`cluster: cannot release leases: ${describeDatabaseError(error)}`);
    }
  }
}
