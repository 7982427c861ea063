/** Sequence ids that strictly increase across restarts and kills, reserved in durable blocks. */
import { writeFileAtomic } from "./files.ts";

/** [SRUP-2.1] The largest id a version 2 frame can carry. */
const MAX_SEQUENCE = 0xffff_ffff_ffff_ffffn;

/** Options for {@linkcode createSequenceAllocator}. */
export interface SequenceAllocatorOptions {
  /** The highest id reserved so far (0 when none); the first id handed out is one above it. */
  load(): Promise<bigint>;
  /** Durably records that ids up to `reservedUpTo` may be in use. */
  persist(reservedUpTo: bigint): Promise<void>;
  /** Ids reserved per durable write; a crash skips at most this many. */
  block?: bigint;
  /**
   * Atomically raises the stored mark by `block` and returns the new mark: several processes
   * sharing one mark (cluster nodes) each get blocks no other one gets. When given, `load` and
   * `persist` are not used.
   */
  reserve?: (block: bigint) => Promise<bigint>;
}

/** Hands out strictly increasing ids. */
export interface SequenceAllocator {
  /** The next id; never repeats one handed out before, even after a crash. */
  next(): Promise<bigint>;
  /**
   * Drops what is left of the current block and reserves a new one: every id handed out after
   * this resolves is above every id any process reserved before it was called (cluster takeover).
   */
  fresh?(): Promise<void>;
}

// A thousand ids per write keeps disk writes rare without wasting much of a u64 after a crash.
const DEFAULT_BLOCK = 1000n;

/** An allocator that persists "reserved up to N" before it hands out any id up to N. */
export function createSequenceAllocator(options: SequenceAllocatorOptions): SequenceAllocator {
  const block = options.block ?? DEFAULT_BLOCK;
  if (block < 1n) throw new RangeError(`Invalid sequence block: ${block} is below 1`);
  let last: bigint | undefined;
  let reserved = 0n;
  // One chain so concurrent callers never interleave a load or a reservation.
  let chain: Promise<unknown> = Promise.resolve();

  async function reserveBlock(): Promise<void> {
    const upTo = await options.reserve!(block);
    if (upTo > MAX_SEQUENCE) throw new RangeError("Cannot allocate sequence id: ids exhausted");
    if (upTo < block) throw new RangeError(`Invalid reserved sequence: ${upTo}`);
    last = upTo - block;
    reserved = upTo;
  }

  async function allocate(): Promise<bigint> {
    if (options.reserve) {
      if (last === undefined || last === reserved) await reserveBlock();
      last! += 1n;
      return last!;
    }
    if (last === undefined) {
      reserved = await options.load();
      if (reserved < 0n || reserved > MAX_SEQUENCE) {
        throw new RangeError(`Invalid reserved sequence: ${reserved}`);
      }
      last = reserved;
    }
    if (last >= MAX_SEQUENCE) throw new RangeError("Cannot allocate sequence id: ids exhausted");
    if (last === reserved) {
      const upTo = reserved + block > MAX_SEQUENCE ? MAX_SEQUENCE : reserved + block;
      await options.persist(upTo);
      reserved = upTo;
    }
    last += 1n;
    return last;
  }

  return {
    next(): Promise<bigint> {
      const id = chain.then(allocate);
      chain = id.catch(() => {});
      return id;
    },
    fresh(): Promise<void> {
      const done = chain.then(() => {
        if (options.reserve) return reserveBlock();
        // One process: the next id persists a new block, above every id handed out so far.
        if (last !== undefined) last = reserved;
      });
      chain = done.catch(() => {});
      return done;
    },
  };
}

/** Options for {@linkcode fileSequenceAllocator}. */
export interface FileSequenceAllocatorOptions {
  /** Ids reserved per durable write. */
  block?: bigint;
}

/** An allocator whose reservation lives in the text file at `path` (written atomically). */
export function fileSequenceAllocator(
  path: string,
  options: FileSequenceAllocatorOptions = {},
): SequenceAllocator {
  return createSequenceAllocator({
    block: options.block,
    load: () => readReservation(path),
    persist: (upTo) => writeFileAtomic(path, `${upTo}\n`),
  });
}

async function readReservation(path: string): Promise<bigint> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0n;
    throw error;
  }
  const trimmed = text.trim();
  if (!/^\d{1,20}$/.test(trimmed)) {
    throw new TypeError(
      `Cannot read sequence reservation: "${path}" holds "${trimmed.slice(0, 40)}"`,
    );
  }
  return BigInt(trimmed);
}
