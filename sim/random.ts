/** Seeded randomness for reproducible simulations: independent streams derived from one seed. */

/** A mulberry32 generator: uniform [0, 1), fast, and good enough for simulation. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The stream named `name` of a seed, so adding draws to one stream never shifts another. */
export function stream(seed: number, name: string): () => number {
  let hash = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  // Mix in the high bits of seeds above 2^32 too.
  hash = Math.imul(hash ^ Math.floor(seed / 4294967296), 0x01000193);
  return mulberry32(hash);
}

/** A token source drawing 16 bytes from `random`: deterministic tokens for simulated runs. */
export function seededTokens(random: () => number): () => Uint8Array {
  return function token(): Uint8Array {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < 16; i += 4) view.setUint32(i, Math.floor(random() * 4294967296));
    return bytes;
  };
}
