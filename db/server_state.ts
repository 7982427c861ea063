/** Server state: small named values, such as the server's sequence high-water mark. */
import { eq, sql } from "drizzle-orm";
import type { Db } from "./open.ts";
import { guard } from "./errors.ts";
import { MAX_U64, serverState } from "./schema.ts";

/** The value stored under `key`, or undefined. */
export async function getServerState(db: Db, key: string): Promise<string | undefined> {
  const [row] = await guard(
    db.select({ value: serverState.value }).from(serverState).where(eq(serverState.key, key)),
    "Cannot read server state",
  );
  return row?.value;
}

/** Stores `value` under `key`. */
export async function setServerState(db: Db, key: string, value: string): Promise<void> {
  await guard(
    db.insert(serverState).values({ key, value })
      .onConflictDoUpdate({ target: serverState.key, set: { value, updatedAt: sql`now()` } }),
    "Cannot write server state",
  );
}

/** The storage a sequence allocator needs: `io/sequence.ts` reserves ids in blocks through it. */
export interface SequenceStore {
  /** The highest id reserved so far; 0 before the first reservation. */
  load(): Promise<bigint>;
  /** Durably records that ids up to `reservedUpTo` are reserved; never moves back. */
  persist(reservedUpTo: bigint): Promise<void>;
  /** Raises the mark by `block` in one statement and returns the new mark (cluster nodes). */
  reserve(block: bigint): Promise<bigint>;
}

/** Options for {@linkcode sequenceStore}. */
export interface SequenceStoreOptions {
  /** The server_state key; default "server_sequence". */
  key?: string;
}

/** A {@linkcode SequenceStore} in server_state; `persist` refuses a value below the stored one. */
export function sequenceStore(db: Db, options: SequenceStoreOptions = {}): SequenceStore {
  const key = options.key ?? "server_sequence";
  return {
    async reserve(block) {
      // One statement: concurrent nodes' reservations serialize on the row, none overlaps another.
      const rows = await guard(
        db.insert(serverState).values({ key, value: block.toString() })
          .onConflictDoUpdate({
            target: serverState.key,
            set: {
              value: sql`(${serverState.value}::numeric + ${block.toString()}::numeric)::text`,
              updatedAt: sql`now()`,
            },
          })
          .returning({ value: serverState.value }),
        "Cannot reserve sequence ids",
      );
      return BigInt(rows[0]!.value);
    },
    async load() {
      const value = await getServerState(db, key);
      return value === undefined ? 0n : BigInt(value);
    },
    async persist(reservedUpTo) {
      if (reservedUpTo < 0n || reservedUpTo > MAX_U64) {
        throw new RangeError(
          `Cannot persist sequence: ${reservedUpTo} is not an unsigned 64-bit value`,
        );
      }
      const value = reservedUpTo.toString();
      // Compare as numbers in one statement, so two writers can never move the mark back.
      const rows = await guard(
        db.insert(serverState).values({ key, value })
          .onConflictDoUpdate({
            target: serverState.key,
            set: { value, updatedAt: sql`now()` },
            setWhere: sql`${serverState.value}::numeric <= ${value}::numeric`,
          })
          .returning({ key: serverState.key }),
        "Cannot persist sequence",
      );
      if (rows.length === 0) {
        const stored = await getServerState(db, key);
        throw new RangeError(
          `Cannot persist sequence: ${reservedUpTo} is below the stored ${stored}`,
        );
      }
    },
  };
}
