/** Fan-out of committed events to live subscribers (SSE), each with a bounded queue. */

/** An event as stored and streamed. */
export interface StreamedEvent {
  id: number;
  type: string;
  rolloutId: string | null;
  deviceId: string | null;
  at: string;
  data: unknown;
}

// A subscriber that cannot keep up is cut off rather than buffered without bound: it reconnects
// with Last-Event-ID and catches up from the database.
const DEFAULT_MAX_PENDING = 10_000;

/** One live subscriber: a bounded queue read by an async iterator. */
export class Subscription implements AsyncIterable<StreamedEvent> {
  readonly #queue: StreamedEvent[] = [];
  readonly #filter: (event: StreamedEvent) => boolean;
  readonly #maxPending: number;
  #wake: (() => void) | undefined;
  #closed: string | undefined;
  #onClose: () => void = () => {};

  constructor(filter: (event: StreamedEvent) => boolean, maxPending: number) {
    this.#filter = filter;
    this.#maxPending = maxPending;
  }

  /** Why the subscription ended, once it has. */
  get closedReason(): string | undefined {
    return this.#closed;
  }

  /** @internal Called by the hub. */
  offer(event: StreamedEvent): void {
    if (this.#closed !== undefined || !this.#filter(event)) return;
    if (this.#queue.length >= this.#maxPending) {
      this.close(`more than ${this.#maxPending} events pending`);
      return;
    }
    this.#queue.push(event);
    this.#wake?.();
  }

  /** @internal */
  onClose(callback: () => void): void {
    this.#onClose = callback;
  }

  close(reason = "closed"): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    this.#onClose();
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamedEvent> {
    while (true) {
      const event = this.#queue.shift();
      if (event) {
        yield event;
        continue;
      }
      if (this.#closed !== undefined) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
  }
}

/** Delivers each published event to every subscriber whose filter accepts it. */
export class EventHub {
  readonly #subscriptions = new Set<Subscription>();
  readonly #maxPending: number;

  constructor(options: { maxPending?: number } = {}) {
    this.#maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  }

  subscribe(filter: (event: StreamedEvent) => boolean = () => true): Subscription {
    const subscription = new Subscription(filter, this.#maxPending);
    this.#subscriptions.add(subscription);
    subscription.onClose(() => this.#subscriptions.delete(subscription));
    return subscription;
  }

  publish(event: StreamedEvent): void {
    for (const subscription of this.#subscriptions) subscription.offer(event);
  }

  /** Ends every subscription, as on shutdown. */
  closeAll(): void {
    for (const subscription of this.#subscriptions) subscription.close("server shutting down");
  }

  get size(): number {
    return this.#subscriptions.size;
  }
}
