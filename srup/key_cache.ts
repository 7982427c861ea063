/** A bounded least-recently-used cache of imported WebCrypto keys, keyed by their raw bytes. */

/** Options for {@linkcode KeyCache}. */
export interface KeyCacheOptions {
  /** Most keys kept; the least recently used goes first. */
  limit: number;
}

/** Imported keys by raw bytes; a failed import is not kept, so the next call reports it again. */
export class KeyCache {
  readonly #keys = new Map<string, Promise<CryptoKey>>();
  readonly #limit: number;

  constructor(options: KeyCacheOptions) {
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new RangeError(`Invalid key cache limit: ${options.limit} is not a positive integer`);
    }
    this.#limit = options.limit;
  }

  /** Keys held now. */
  get size(): number {
    return this.#keys.size;
  }

  /** The cached key for `raw`, or the one `load` makes, kept as the most recently used. */
  get(raw: Uint8Array, load: () => Promise<CryptoKey>): Promise<CryptoKey> {
    const id = raw.toHex();
    let key = this.#keys.get(id);
    if (key) {
      // A Map iterates in insertion order: re-inserting makes this key the newest.
      this.#keys.delete(id);
      this.#keys.set(id, key);
      return key;
    }
    if (this.#keys.size >= this.#limit) this.#keys.delete(this.#keys.keys().next().value!);
    key = load();
    this.#keys.set(id, key);
    key.catch(() => {
      if (this.#keys.get(id) === key) this.#keys.delete(id);
    });
    return key;
  }
}
