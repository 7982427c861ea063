import assert from "node:assert/strict";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import {
  artifactChunks,
  artifacts,
  countChunks,
  type Database,
  getStoredBlob,
  openDatabase,
  putArtifact,
} from "../../db/mod.ts";
import { DigestMismatchError, type PutArtifact } from "../../http/artifact_store.ts";
import { DbArtifactStore } from "../../http/db_artifact_store.ts";
import { createTestDatabase, TEST_DATABASE_URL } from "../db/_postgres.ts";
import { ADMIN_TOKEN, startTestService } from "../orchestrator/_service.ts";

const MiB = 1024 * 1024;
const SKIPPED = TEST_DATABASE_URL === undefined
  ? " (ignored: FLOTILLA_TEST_DATABASE_URL is unset)"
  : "";

/** Bytes that do not compress, so PostgreSQL stores them at full size. */
function noise(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return new Uint8Array(digest).toHex();
}

async function rows(database: Database): Promise<{ artifacts: number; chunks: number }> {
  const [a] = await database.db.select({ n: sql<number>`count(*)::int` }).from(artifacts);
  const [c] = await database.db.select({ n: sql<number>`count(*)::int` }).from(artifactChunks);
  return { artifacts: a!.n, chunks: c!.n };
}

/** Records the upload as the API does, so the row is written in the store's transaction. */
function recordIn(database: Database) {
  return async (stored: PutArtifact, tx = database.db) => {
    await putArtifact(tx, {
      digest: stored.digest,
      size: stored.size,
      blob: "blob" in stored ? stored.blob : null,
      path: null,
    });
  };
}

Deno.test({
  name: `DbArtifactStore keeps uploads in PostgreSQL pieces, all or nothing${SKIPPED}`,
  ignore: TEST_DATABASE_URL === undefined,
  async fn(t) {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    const database = await openDatabase({ url: target.url });
    try {
      const store = new DbArtifactStore(database.db, { chunkBytes: 1000, cacheFileBytes: 0 });
      const record = recordIn(database);

      await t.step("an upload is split into pieces and read back whole and in ranges", async () => {
        const bytes = noise(4500, 1);
        const stored = await store.put(
          streamOf(bytes.subarray(0, 1700), bytes.subarray(1700)),
          MiB,
          {
            record,
          },
        );
        assert.equal(stored.created, true);
        assert.equal(stored.digest, await sha256(bytes));
        assert.ok("blob" in stored);
        assert.equal(await countChunks(database.db, stored.blob), 5);
        const got = await store.get(stored.digest);
        assert.deepEqual(got, { digest: stored.digest, size: 4500, blob: stored.blob });
        assert.equal(await store.bytes(got!), undefined, "above the per-file cache size");
        const whole = new Uint8Array(
          await new Response(await store.stream(got!, 0, 4500)).arrayBuffer(),
        );
        assert.deepEqual(whole, bytes);
        // A range across three pieces, starting and ending inside one.
        const part = new Uint8Array(
          await new Response(await store.stream(got!, 999, 2003)).arrayBuffer(),
        );
        assert.deepEqual(part, bytes.subarray(999, 3002));
      });

      await t.step("the same bytes again store nothing new", async () => {
        const before = await rows(database);
        const again = await store.put(streamOf(noise(4500, 1)), MiB, { record });
        assert.equal(again.created, false);
        assert.deepEqual(await rows(database), before);
      });

      await t.step("a body that fails midway leaves no piece and no row", async () => {
        const before = await rows(database);
        let sent = 0;
        const failing = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent >= 3500) {
              controller.error(new Error("connection reset by peer"));
              return;
            }
            sent += 700;
            controller.enqueue(noise(700, sent));
          },
        });
        await assert.rejects(store.put(failing, MiB, { record }), /connection reset by peer/);
        assert.ok(sent >= 3500, "pieces were written before the failure");
        assert.deepEqual(await rows(database), before);
      });

      await t.step("the wrong digest and a failed record leave nothing either", async () => {
        const before = await rows(database);
        await assert.rejects(
          store.put(streamOf(noise(2500, 2)), MiB, { digest: "0".repeat(64), record }),
          DigestMismatchError,
        );
        await assert.rejects(
          store.put(streamOf(noise(2500, 3)), MiB, {
            record: () => Promise.reject(new Error("manifest refused")),
          }),
          /manifest refused/,
        );
        assert.deepEqual(await rows(database), before);
      });

      await t.step(
        "a digest recorded elsewhere first keeps its row; this put's pieces go",
        async () => {
          const bytes = noise(1500, 4);
          const digest = await sha256(bytes);
          await putArtifact(database.db, { digest, url: "https://example.com/fw.bin" });
          const before = await rows(database);
          await store.put(streamOf(bytes), MiB, { record });
          assert.deepEqual(await rows(database), before);
          assert.equal(await getStoredBlob(database.db, digest), undefined);
        },
      );
    } finally {
      await database.close();
      await target.drop();
    }
  },
});

Deno.test({
  name:
    `DbArtifactStore serves a small artifact from memory once read, the database away${SKIPPED}`,
  ignore: TEST_DATABASE_URL === undefined,
  async fn() {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    const database = await openDatabase({ url: target.url });
    let closed = false;
    try {
      const store = new DbArtifactStore(database.db);
      const bytes = noise(64 * 1024, 9);
      const { digest } = await store.put(streamOf(bytes), MiB, { record: recordIn(database) });
      assert.deepEqual(await store.bytes((await store.get(digest))!), bytes);
      await database.close();
      closed = true;
      const cached = await store.get(digest);
      assert.ok(cached);
      assert.deepEqual(await store.bytes(cached), bytes);
      await assert.rejects(store.get(digest.replace(/.$/, (c) => c === "0" ? "1" : "0")));
    } finally {
      if (!closed) await database.close();
      await target.drop();
    }
  },
});

Deno.test({
  name: `DbArtifactStore writes a 20 MiB upload a piece at a time as it arrives${SKIPPED}`,
  ignore: TEST_DATABASE_URL === undefined,
  async fn() {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    const database = await openDatabase({ url: target.url });
    // A second session sees the table's storage grow while the upload's transaction is open.
    const observer = postgres(target.url, { max: 1, onnotice: () => {} });
    try {
      const store = new DbArtifactStore(database.db);
      const size = 20 * MiB;
      const part = 256 * 1024;
      let sent = 0;
      const stored: number[] = [];
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent >= size) {
            controller.close();
            return;
          }
          if (sent % (4 * MiB) === 0) {
            const [row] =
              await observer`select pg_total_relation_size('artifact_chunks')::bigint as n`;
            stored.push(Number(row!.n));
          }
          controller.enqueue(noise(part, sent + 1));
          sent += part;
        },
      }, { highWaterMark: 0 });
      const put = await store.put(body, 1024 * MiB, { record: recordIn(database) });
      assert.equal(put.size, size);
      assert.ok("blob" in put);
      assert.equal(await countChunks(database.db, put.blob), 20);
      const [largest] = await database.db.select({
        n: sql<number>`max(length(${artifactChunks.data}))::int`,
      }).from(artifactChunks);
      assert.equal(largest!.n, MiB);
      // Before the body was read past 16 MiB, at least 12 MiB of it was already in the table:
      // the store holds about one piece, not the file.
      assert.equal(stored.length, 5);
      assert.ok(stored[4]! - stored[0]! >= 12 * MiB, `table grew by ${stored[4]! - stored[0]!}`);
    } finally {
      await observer.end({ timeout: 5 });
      await database.close();
      await target.drop();
    }
  },
});

Deno.test({
  name: `an artifact uploaded to one node downloads from another on the same PostgreSQL${SKIPPED}`,
  ignore: TEST_DATABASE_URL === undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const target = await createTestDatabase(TEST_DATABASE_URL!);
    const root = await Deno.makeTempDir({ prefix: "flotilla-artifacts-" });
    const env = { DATABASE_URL: target.url };
    const one = await startTestService(join(root, "one"), { env });
    const two = await startTestService(join(root, "two"), { env });
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const observer = postgres(target.url, { max: 1, onnotice: () => {} });
    async function counts() {
      const [row] = await observer`select (select count(*) from artifacts)::int as artifacts,
        (select count(*) from artifact_chunks)::int as chunks`;
      return { artifacts: row!.artifacts as number, chunks: row!.chunks as number };
    }
    try {
      const bytes = noise(3 * MiB + 123, 7);
      const digest = await sha256(bytes);

      await t.step("node one stores the upload in the database, not in its directory", async () => {
        const response = await fetch(`${one.apiUrl}/v1/artifacts?name=fw`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/octet-stream" },
          body: bytes as Uint8Array<ArrayBuffer>,
        });
        const body = await response.json();
        assert.equal(response.status, 201, JSON.stringify(body));
        assert.equal(body.digest, digest);
        assert.equal(body.stored, true);
        assert.deepEqual(await counts(), { artifacts: 1, chunks: 4 });
        const files = [...Deno.readDirSync(join(root, "one", "artifacts"))];
        assert.deepEqual(files, []);
      });

      await t.step("node two serves it whole, by range and by HEAD", async () => {
        const whole = await fetch(`${two.apiUrl}/artifacts/${digest}`);
        assert.equal(whole.status, 200);
        assert.equal(whole.headers.get("content-length"), String(bytes.length));
        assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
        const start = MiB - 10;
        const end = 2 * MiB + 10;
        const ranged = await fetch(`${two.apiUrl}/artifacts/${digest}`, {
          headers: { range: `bytes=${start}-${end}` },
        });
        assert.equal(ranged.status, 206);
        assert.equal(ranged.headers.get("content-range"), `bytes ${start}-${end}/${bytes.length}`);
        assert.deepEqual(
          new Uint8Array(await ranged.arrayBuffer()),
          bytes.subarray(start, end + 1),
        );
        const head = await fetch(`${two.apiUrl}/artifacts/${digest}`, { method: "HEAD" });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get("content-length"), String(bytes.length));
        const listed =
          await (await fetch(`${two.apiUrl}/v1/artifacts/${digest}`, { headers: auth }))
            .json();
        assert.equal(listed.name, "fw");
      });

      await t.step("a wrong ?digest= is refused and stores nothing", async () => {
        const response = await fetch(`${two.apiUrl}/v1/artifacts?digest=${"0".repeat(64)}`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/octet-stream" },
          body: noise(2 * MiB, 8) as Uint8Array<ArrayBuffer>,
        });
        const body = await response.json();
        assert.equal(response.status, 422);
        assert.equal(body.error.code, "digest_mismatch");
        assert.deepEqual(await counts(), { artifacts: 1, chunks: 4 });
      });

      await t.step("a manifest that does not decode is refused and stores nothing", async () => {
        const response = await fetch(`${one.apiUrl}/v1/artifacts?manifest=AAAA`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/octet-stream" },
          body: noise(2 * MiB, 10) as Uint8Array<ArrayBuffer>,
        });
        const body = await response.json();
        assert.equal(response.status, 422, JSON.stringify(body));
        assert.equal(body.error.code, "invalid_manifest");
        assert.deepEqual(await counts(), { artifacts: 1, chunks: 4 });
      });

      await t.step("an upload cut off midway leaves no artifact row and no piece", async () => {
        let sent = 0;
        let written = 0;
        const [start] = await observer`
          select pg_total_relation_size('artifact_chunks')::bigint as n`;
        const body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (sent >= 3 * MiB) {
              // Cut off only once the open transaction has pieces in the table.
              for (let i = 0; i < 200 && written < 2 * MiB; i++) {
                const [row] = await observer`
                  select pg_total_relation_size('artifact_chunks')::bigint as n`;
                written = Number(row!.n) - Number(start!.n);
                await new Promise((resolve) => setTimeout(resolve, 25));
              }
              controller.error(new Error("client gone"));
              return;
            }
            sent += 256 * 1024;
            controller.enqueue(noise(256 * 1024, sent));
          },
        });
        await fetch(`${one.apiUrl}/v1/artifacts`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/octet-stream" },
          body,
          duplex: "half",
        } as RequestInit).then((r) => r.body?.cancel()).catch(() => {});
        // The server ends the upload's transaction when it sees the body fail; wait for that.
        for (let i = 0; i < 200; i++) {
          const [row] = await observer`select count(*)::int as n from pg_stat_activity
            where datname = current_database() and state like 'idle in transaction%'`;
          if (row!.n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.ok(written >= 2 * MiB, `pieces written before the cut: ${written} bytes`);
        assert.deepEqual(await counts(), { artifacts: 1, chunks: 4 });
      });
    } finally {
      await observer.end({ timeout: 5 });
      await one.close();
      await two.close();
      await target.drop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
