/**
 * This node's part in a cluster: its heartbeat, the rollout leases it holds, their renewal, and
 * whether it may still act for a rollout by its own monotonic clock. See docs/cluster.md.
 */
import {
  claimRollout,
  type Db,
  describeDatabaseError,
  type Fence,
  heartbeat,
  listClaimable,
  releaseLeases,
  renewLeases,
  type Rollout,
} from "../db/mod.ts";
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
}

/** What the cluster asks of the orchestrator. */
export interface ClusterDriver {
  /** Drives a rollout this node just claimed, from the database. */
  restore(row: Rollout): Promise<void>;
  /** Stops driving a rollout at once: its lease is lost. */
  lost(id: string): void;
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
      const ids = await listClaimable(this.#db, { node: this.node, ttlMs: this.ttlMs });
      for (const id of ids) {
        if (this.#closed) break;
        const row = await this.claim(id);
        if (!row) continue;
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

  /** Stops the loops; with `release`, gives up every lease at once so others take over now. */
  async close(release: boolean): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    if (!release) return;
    this.#held.clear();
    try {
      const n = await releaseLeases(this.#db, this.node);
      if (n > 0) this.#log(`cluster: released ${n} lease(s)`);
    } catch (error) {
      this.#log(`cluster: cannot release leases: ${describeDatabaseError(error)}`);
    }
  }
}
