/**
 * Child process of crash_test.ts: commits writes through the group-commit writer as fast as it
 * can and prints each one after its commit, until the parent kills it with SIGKILL.
 */
import { GroupCommitWriter, openDatabase, sequenceStore } from "../../db/mod.ts";

const [dataDir] = Deno.args;
if (!dataDir) throw new TypeError("Missing argument: data dir");
const database = await openDatabase({ dataDir });
const writer = new GroupCommitWriter(database.db, { maxDelayMs: 2 });
const store = sequenceStore(database.db);
const encoder = new TextEncoder();
let next = 0;

function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(`${line}\n`));
}

async function events(): Promise<never> {
  while (true) {
    const n = next++;
    await writer.enqueue({ kind: "event", event: { type: "crash.probe", data: { n } } });
    say(`event ${n}`);
  }
}

async function sequence(): Promise<never> {
  for (let reserved = 1000n;; reserved += 1000n) {
    await store.persist(reserved);
    say(`sequence ${reserved}`);
    // An allocator reserves a block now and then; a tight loop would also starve the writer's timer.
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

say("ready");
await Promise.all([events(), events(), events(), events(), sequence()]);
