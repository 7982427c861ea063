/** [SRUP-11.3] Where a device keeps a key it has proposed until the server acknowledges it. */

/** The device's next key, durable across a kill, and the switch to it. */
export interface DeviceKeyStore {
  /** The proposed key (32-byte seed), or undefined when no rotation is under way. */
  loadNext(): Promise<Uint8Array | undefined>;
  /** Keeps `seed` as the proposed key; replaces any earlier proposal. */
  saveNext(seed: Uint8Array): Promise<void>;
  /** Makes the proposed key the device's own; a kill at any instant leaves the old or the new. */
  commitNext(seed: Uint8Array): Promise<void>;
}

/** Keeps the proposed key in memory: the simulator's, where a restart keeps the same object. */
export class MemoryKeyStore implements DeviceKeyStore {
  #next: Uint8Array | undefined;
  /** The committed key, once a rotation completed. */
  current: Uint8Array | undefined;

  loadNext(): Promise<Uint8Array | undefined> {
    return Promise.resolve(this.#next);
  }

  saveNext(seed: Uint8Array): Promise<void> {
    this.#next = seed.slice();
    return Promise.resolve();
  }

  commitNext(seed: Uint8Array): Promise<void> {
    this.current = seed.slice();
    this.#next = undefined;
    return Promise.resolve();
  }
}
