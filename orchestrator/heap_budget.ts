/**
 * Room in the JS heap for a new rollout. A rollout too large for the heap is refused at creation
 * with the figures, instead of running until V8 ends the process at its heap limit.
 */
import { getHeapStatistics } from "node:v8";

/** The JS heap: V8's limit and what is in use now (live and not yet collected), in bytes. */
export interface HeapUsage {
  limit: number;
  used: number;
}

// A 100,000-device rollout held about 1.1 KB of live heap a device when it started
// (bench/README.md); doubled for the devices in flight and the garbage between collections.
const BYTES_PER_DEVICE = 2048;

/** This isolate's heap, from V8. */
export function v8HeapUsage(): HeapUsage {
  const stats = getHeapStatistics();
  return { limit: stats.heap_size_limit, used: stats.used_heap_size };
}

/** A rollout's devices would not fit in the heap left; the API answers it with 503. */
export class InsufficientHeapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InsufficientHeapError";
  }
}

/** Throws InsufficientHeapError when a rollout of `devices` would not fit in the heap left. */
export function checkHeapRoom(devices: number, usage: HeapUsage): void {
  const needed = devices * BYTES_PER_DEVICE;
  const free = usage.limit - usage.used;
  if (needed <= free) return;
  throw new InsufficientHeapError(
    `Cannot create rollout: ${devices} devices need about ${mb(needed)} MB of heap and ` +
      `${mb(Math.max(0, free))} MB of the ${mb(usage.limit)} MB heap limit is free; start the ` +
      `orchestrator with a larger --v8-flags=--max-old-space-size (docs/operations.md)`,
  );
}

function mb(bytes: number): number {
  return Math.round(bytes / 1024 / 1024);
}
