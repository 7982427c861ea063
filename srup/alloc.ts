/** Small-buffer allocation from shared slabs, as Node's Buffer pool does. */

// A new ArrayBuffer per frame dominated codec time (about 0.7 µs each); views into a 64 KiB slab
// cost a tenth of that. A retained frame keeps at most one slab alive.
const SLAB_BYTES = 64 * 1024;

let slab = new Uint8Array(SLAB_BYTES);
let used = 0;

/** A zeroed view of `size` bytes; frames over a quarter slab get a buffer of their own. */
export function allocBytes(size: number): Uint8Array {
  if (size > SLAB_BYTES / 4) return new Uint8Array(size);
  if (used + size > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    used = 0;
  }
  const view = slab.subarray(used, used + size);
  // Keep views 8-byte aligned so a DataView over one never straddles an odd offset.
  used += (size + 7) & ~7;
  return view;
}
