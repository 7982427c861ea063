import assert from "node:assert/strict";
import { listEvents, openDatabase, sequenceStore } from "../../db/mod.ts";

const CHILD = new URL("./_crash_child.ts", import.meta.url).pathname;
const ACKED_BEFORE_KILL = 300;
const TIMEOUT_MS = 60_000;

Deno.test("PGlite keeps every write the writer acknowledged through a SIGKILL", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "flotilla-crash-" });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", CHILD, dataDir],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const acked = new Set<number>();
    let sequence = 0n;
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    try {
      let buffered = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        buffered += chunk;
        const lines = buffered.split("\n");
        buffered = lines.pop()!;
        for (const line of lines) {
          const [kind, value] = line.split(" ");
          if (kind === "event") acked.add(Number(value));
          if (kind === "sequence") sequence = BigInt(value!);
        }
        if (acked.size >= ACKED_BEFORE_KILL && sequence > 0n) {
          // Mid-stream: batches are queued and in flight at this instant.
          child.kill("SIGKILL");
          break;
        }
      }
    } finally {
      clearTimeout(timer);
    }
    const status = await child.status;
    await child.stdout.cancel().catch(() => {});
    assert.equal(status.signal, "SIGKILL");
    assert.ok(acked.size >= ACKED_BEFORE_KILL, `child stopped early: ${await stderr}`);
    await stderr;

    const database = await openDatabase({ dataDir });
    try {
      const stored = new Set<number>();
      for (let after = 0;;) {
        const page = await listEvents(database.db, { after, limit: 1000 });
        if (page.length === 0) break;
        for (const event of page) stored.add(event.data.n as number);
        after = page.at(-1)!.id;
      }
      const lost = [...acked].filter((n) => !stored.has(n));
      assert.deepEqual(lost, [], "every acknowledged write survives");
      assert.ok(
        await sequenceStore(database.db).load() >= sequence,
        "the sequence never goes back",
      );
    } finally {
      await database.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
