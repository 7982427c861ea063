/**
 * [SRUP-10] Which server key signs each device's frames: the next key for a device that confirmed
 * it (a KEY_ROTATE's 0x10), the current key for every other.
 */
import type { ServerKey } from "./server_key.ts";

/** The server's current key, its next key once a rotation made one, and who trusts the next. */
export class ServerKeyRing {
  readonly current: ServerKey;
  #next: ServerKey | undefined;
  /** Devices known to trust the next key, by id; each id is a string of ~60 bytes. */
  readonly #onNext = new Set<string>();

  constructor(current: ServerKey, next?: ServerKey) {
    this.current = current;
    this.#next = next;
  }

  /** The next key, once a rotation made or found one. */
  get next(): ServerKey | undefined {
    return this.#next;
  }

  /** Takes `key` as the next key (a rotation's first start). */
  setNext(key: ServerKey): void {
    if (this.#next && this.#next.fingerprint !== key.fingerprint) {
      throw new RangeError(
        `Cannot set next server key: "${this.#next.fingerprint}" is the next key already`,
      );
    }
    this.#next = key;
  }

  /** The key that signs frames to `deviceId`. */
  signingKey(deviceId: string): Uint8Array {
    return this.#next && this.#onNext.has(deviceId)
      ? this.#next.privateKey
      : this.current.privateKey;
  }

  /** Records the fingerprint a device trusts (from the database, or its 0x10 just now). */
  trust(deviceId: string, fingerprint: string | undefined): void {
    if (fingerprint !== undefined && fingerprint === this.#next?.fingerprint) {
      this.#onNext.add(deviceId);
    } else {
      this.#onNext.delete(deviceId);
    }
  }

  /** Forgets a removed device. */
  forget(deviceId: string): void {
    this.#onNext.delete(deviceId);
  }
}
