import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type AgentState,
  type ArtifactRecord,
  emptyState,
  FileDeviceStore,
  readState,
} from "../../device/mod.ts";
import { agentFixture, fetchReturning, sha256 } from "./_fixture.ts";

const encoder = new TextEncoder();

async function writeSlot(store: FileDeviceStore, slot: number, text: string): Promise<void> {
  const writer = await store.openSlot(slot);
  await writer.write(encoder.encode(text));
  await writer.close();
}

function record(slot: number, text: string): ArtifactRecord {
  return { slot, token: "aa".repeat(16), digest: "bb".repeat(32), size: text.length };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("FileDeviceStore saves and loads state, sequences included", () =>
  withDir(async (dir) => {
    const store = new FileDeviceStore(dir);
    assert.deepEqual(await store.load(), emptyState());
    const state: AgentState = {
      sequences: new Map([["ab", 18446744073709551615n]]),
      tokens: ["00ff"],
      staged: record(2, "x"),
    };
    await store.save(state);
    assert.deepEqual(await new FileDeviceStore(dir).load(), state);
  }));

Deno.test("FileDeviceStore activate() points current and previous at their slots", () =>
  withDir(async (dir) => {
    const store = new FileDeviceStore(dir);
    await store.load();
    await writeSlot(store, 0, "one");
    await store.activate({ ...emptyState(), current: record(0, "one") });
    assert.equal(await Deno.readTextFile(join(dir, "current")), "one");
    await assert.rejects(Deno.lstat(join(dir, "previous")), Deno.errors.NotFound);
    await writeSlot(store, 1, "two");
    await store.activate({
      ...emptyState(),
      current: record(1, "two"),
      previous: record(0, "one"),
    });
    assert.equal(await Deno.readTextFile(join(dir, "current")), "two");
    assert.equal(await Deno.readTextFile(join(dir, "previous")), "one");
    assert.equal(await Deno.readLink(join(dir, "current")), "slots/1");
  }));

Deno.test("FileDeviceStore refuses to open the current or previous slot", () =>
  withDir(async (dir) => {
    const store = new FileDeviceStore(dir);
    await store.load();
    await writeSlot(store, 0, "one");
    await writeSlot(store, 1, "two");
    await store.activate({
      ...emptyState(),
      current: record(1, "two"),
      previous: record(0, "one"),
    });
    for (const slot of [0, 1]) {
      await assert.rejects(store.openSlot(slot), /Cannot open slot \d: it holds a kept artifact/);
    }
    assert.equal(await Deno.readTextFile(join(dir, "previous")), "one");
  }));

Deno.test("FileDeviceStore load() puts links back where the saved state says", () =>
  withDir(async (dir) => {
    const store = new FileDeviceStore(dir);
    await store.load();
    await writeSlot(store, 0, "one");
    await writeSlot(store, 1, "two");
    await store.activate({ ...emptyState(), current: record(0, "one") });
    // A kill after re-pointing the links and before saving the state leaves this behind.
    await Deno.remove(join(dir, "current"));
    await Deno.symlink("slots/1", join(dir, "current"));
    await Deno.symlink("slots/0", join(dir, "previous"));
    await new FileDeviceStore(dir).load();
    assert.equal(await Deno.readTextFile(join(dir, "current")), "one");
    await assert.rejects(Deno.lstat(join(dir, "previous")), Deno.errors.NotFound);
  }));

Deno.test("readState() names the file when the state is corrupt", () =>
  withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "state.json"), '{"format":1,"tokens":"x"}');
    await assert.rejects(
      readState(dir),
      /Cannot read device state ".*state\.json": Invalid device state: tokens must be hex strings/,
    );
  }));

Deno.test("an agent on FileDeviceStore keeps its staged update and sequence across a restart", () =>
  withDir(async (dir) => {
    const body = encoder.encode("firmware");
    const digest = await sha256(body);
    const f = await agentFixture({
      store: new FileDeviceStore(dir),
      ...fetchReturning(() => new Response(body)),
    });
    const init = await f.initiate({ url: "https://x.example/fw", digest });
    await (await f.make()).handleFrame(init.frame);
    const restarted = await f.make({ store: new FileDeviceStore(dir) });
    await restarted.handleFrame((await f.activate(init.message.token)).frame);
    assert.deepEqual(f.replies.map((r) => [r.message.status, r.message.sequence]), [
      [0x00, 1n],
      // The first process reserved a block of ids; the restart continues above it.
      [0x10, 1001n],
    ]);
    assert.equal(await Deno.readTextFile(join(dir, "current")), "firmware");
  }));
