/** The device agent's DeviceStore on disk; every change survives a kill at any instant. */
import { join } from "node:path";
import { syncDirectory, writeFileAtomic } from "../io/files.ts";
import { fileSequenceAllocator, type SequenceAllocator } from "../io/sequence.ts";
import { type AgentState, emptyState, stateFromJson, stateToJson } from "./state.ts";
import type { ArtifactWriter, DeviceStore } from "./store.ts";

/** File names inside the device directory. */
export const DEVICE_FILES = {
  state: "state.json",
  sequence: "sequence",
  slots: "slots",
  current: "current",
  previous: "previous",
} as const;

/**
 * State in `state.json` (the truth), artifacts in `slots/0..2`, and the symlinks `current` and
 * `previous` pointing into `slots/`, re-pointed from the state whenever they could disagree.
 */
export class FileDeviceStore implements DeviceStore {
  readonly #dir: string;
  readonly #sequence: SequenceAllocator;
  #saved: AgentState = emptyState();

  constructor(dir: string) {
    this.#dir = dir;
    this.#sequence = fileSequenceAllocator(join(dir, DEVICE_FILES.sequence));
  }

  async load(): Promise<AgentState> {
    this.#saved = await readState(this.#dir) ?? emptyState();
    // A kill between re-pointing the links and saving the state leaves them ahead: put them back.
    await this.#link(this.#saved);
    return this.#saved;
  }

  async save(state: AgentState): Promise<void> {
    await writeFileAtomic(join(this.#dir, DEVICE_FILES.state), stateToJson(state));
    this.#saved = state;
  }

  async openSlot(slot: number): Promise<ArtifactWriter> {
    if (slot === this.#saved.current?.slot || slot === this.#saved.previous?.slot) {
      throw new RangeError(`Cannot open slot ${slot}: it holds a kept artifact`);
    }
    const dir = join(this.#dir, DEVICE_FILES.slots);
    await Deno.mkdir(dir, { recursive: true });
    const path = join(dir, String(slot));
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    let open = true;
    function finish(): void {
      if (open) file.close();
      open = false;
    }
    return {
      async write(chunk) {
        let written = 0;
        while (written < chunk.length) written += await file.write(chunk.subarray(written));
      },
      async close() {
        try {
          await file.sync();
        } finally {
          finish();
        }
        await syncDirectory(dir);
      },
      async abort() {
        finish();
        await Deno.remove(path).catch(() => {});
      },
    };
  }

  async activate(state: AgentState): Promise<void> {
    const before = this.#saved;
    try {
      await this.#link(state);
      await this.save(state);
    } catch (error) {
      await this.#link(before).catch(() => {});
      throw error;
    }
  }

  nextSequence(): Promise<bigint> {
    return this.#sequence.next();
  }

  /** Points `current` and `previous` at the slots `state` names, each by an atomic rename. */
  async #link(state: AgentState): Promise<void> {
    let changed = false;
    for (const name of [DEVICE_FILES.current, DEVICE_FILES.previous]) {
      const path = join(this.#dir, name);
      const record = state[name];
      const target = record && `${DEVICE_FILES.slots}/${record.slot}`;
      const existing = await Deno.readLink(path).catch(() => undefined);
      if (existing === target) continue;
      changed = true;
      if (target === undefined) {
        await Deno.remove(path);
        continue;
      }
      const temp = `${path}.tmp-${crypto.randomUUID()}`;
      await Deno.symlink(target, temp);
      try {
        await Deno.rename(temp, path);
      } catch (error) {
        await Deno.remove(temp).catch(() => {});
        throw error;
      }
    }
    if (changed) await syncDirectory(this.#dir);
  }
}

/** The saved state in `dir`, or undefined when there is none yet. */
export async function readState(dir: string): Promise<AgentState | undefined> {
  const path = join(dir, DEVICE_FILES.state);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    return stateFromJson(text);
  } catch (error) {
    throw new Error(`Cannot read device state "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}
