/** Devices waiting for their maintenance window, per window group: FIFOs of device indices. */

/** A FIFO of device indices with O(1) shift. */
export class Queue {
  #items: number[] = [];
  #head = 0;

  get size(): number {
    return this.#items.length - this.#head;
  }

  push(index: number): void {
    this.#items.push(index);
  }

  shift(): number {
    const index = this.#items[this.#head++]!;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return index;
  }
}

/** The queue of `group`, made when missing. */
export function queueOf(queues: Map<number, Queue>, group: number): Queue {
  let queue = queues.get(group);
  if (!queue) queues.set(group, queue = new Queue());
  return queue;
}

/** Devices in every queue. */
export function queued(queues: Map<number, Queue>): number {
  let n = 0;
  for (const queue of queues.values()) n += queue.size;
  return n;
}
