/** A DeviceStore in memory: the simulator's, where "restart" means a new agent on the same store. */
import { type AgentState, emptyState } from "./state.ts";
import type { ArtifactWriter, DeviceStore } from "./store.ts";

/** Options for {@linkcode MemoryDeviceStore}. */
export interface MemoryDeviceStoreOptions {
  /** Keep artifact bytes (default true); false keeps only the records, for large simulations. */
  keepBytes?: boolean;
}

/** Keeps state and artifacts in memory. */
export class MemoryDeviceStore implements DeviceStore {
  readonly #keepBytes: boolean;
  readonly #slots = new Map<number, Uint8Array>();
  #state: AgentState = emptyState();
  #sequence = 0n;

  constructor(options: MemoryDeviceStoreOptions = {}) {
    this.#keepBytes = options.keepBytes ?? true;
  }

  load(): Promise<AgentState> {
    return Promise.resolve(copyState(this.#state));
  }

  save(state: AgentState): Promise<void> {
    this.#state = copyState(state);
    return Promise.resolve();
  }

  openSlot(slot: number): Promise<ArtifactWriter> {
    const chunks: Uint8Array[] = [];
    const slots = this.#slots;
    const keep = this.#keepBytes;
    slots.delete(slot);
    return Promise.resolve({
      write(chunk: Uint8Array): Promise<void> {
        if (keep) chunks.push(chunk.slice());
        return Promise.resolve();
      },
      close(): Promise<void> {
        if (keep) slots.set(slot, concat(chunks));
        return Promise.resolve();
      },
      abort(): Promise<void> {
        return Promise.resolve();
      },
    });
  }

  activate(state: AgentState): Promise<void> {
    return this.save(state);
  }

  nextSequence(): Promise<bigint> {
    return Promise.resolve(++this.#sequence);
  }

  /** The bytes of the active (`current`) or the `previous` artifact, when kept. */
  artifact(which: "current" | "previous"): Uint8Array | undefined {
    const record = this.#state[which];
    return record === undefined ? undefined : this.#slots.get(record.slot);
  }
}

function copyState(state: AgentState): AgentState {
  return { ...state, sequences: new Map(state.sequences), tokens: [...state.tokens] };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}
