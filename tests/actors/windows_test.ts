import assert from "node:assert/strict";
import { snapshotFromRows } from "../../actors/mod.ts";
import { NO_WINDOW, WindowCalendar } from "../../policies/mod.ts";
import { SimClock } from "../../sim/mod.ts";
import { HAPPY, harness, policyOf } from "./_harness.ts";

const M = 60_000;
const H = 60 * M;
const DAY = 24 * H;
const at = (iso: string) => Date.parse(iso);
const JAN10 = at("2026-01-10T00:00:00Z");

/** 02:00 to 03:00 UTC every night. */
const NIGHTLY = `windows:
  open:
    - { start: "0 2 * * *", duration: 1h }`;

Deno.test("windows: no INITIATE outside the window, over several nights, until complete", () => {
  const h = harness({
    policy: `stages: [{ percent: 10 }, { percent: 100 }]
concurrency: 5
rate: { perMinute: 1 }
${NIGHTLY}`,
    devices: 150,
    answer: HAPPY,
    clock: new SimClock(JAN10),
  }).run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().activated, 150);
  const calendar = new WindowCalendar(h.policy.windows!.open!);
  const initiates = h.sendsOf("initiate");
  assert.equal(initiates.length, 150);
  for (const send of initiates) {
    assert.ok(calendar.isOpen(send.at), `INITIATE at ${new Date(send.at).toISOString()}`);
  }
  // 60 starts per one-hour window at one a minute: three nights.
  const nights = new Set(initiates.map((send) => Math.floor(send.at / DAY)));
  assert.equal(nights.size, 3);
  assert.equal(initiates[0]!.at, at("2026-01-10T02:00:00Z"));
});

Deno.test("windows: a rollout created after tonight's window waits for tomorrow's and wakes up by itself", async (t) => {
  const h = harness({
    policy: `stages: [{ percent: 100 }]\n${NIGHTLY}`,
    devices: 3,
    answer: HAPPY,
    clock: new SimClock(at("2026-01-10T03:30:00Z")),
  });
  h.engine.start();
  await t.step("nothing is sent, every device waits, the next opening is shown", () => {
    assert.equal(h.sends.length, 0);
    const windows = h.engine.summary().windows!;
    assert.equal(windows.waiting, 3);
    assert.deepEqual(windows.groups, [{
      group: null,
      open: false,
      nextOpen: at("2026-01-11T02:00:00Z"),
      nextClose: null,
      waiting: 3,
    }]);
    assert.equal(h.engine.waitingForWindow(h.ids[0]!, 0), true);
    assert.equal(h.engine.state, "running");
  });
  await t.step("the engine's own timer starts them when the window opens", () => {
    h.clock.run();
    assert.equal(h.engine.state, "completed");
    assert.deepEqual(h.sendsOf("initiate").map((s) => s.at), [
      at("2026-01-11T02:00:00Z"),
      at("2026-01-11T02:00:00Z"),
      at("2026-01-11T02:00:00Z"),
    ]);
    assert.equal(h.engine.summary().windows!.waiting, 0);
  });
});

Deno.test("windows: a retry whose backoff ends after the window closes waits for the next opening", () => {
  const h = harness({
    policy: `stages: [{ percent: 100 }]
retry: { attempts: 3, backoff: 5m, maxBackoff: 5m }
windows:
  open:
    - { start: "0 2 * * *", duration: 2m }`,
    devices: 2,
    clock: new SimClock(JAN10),
    answer: (send) =>
      send.index === 1 && send.attempt === 1 ? { status: 0xfd, after: 30_000 } : HAPPY(send),
  });
  h.engine.start();
  h.clock.run({ until: at("2026-01-10T02:10:00Z") });
  const retrying = h.eventsOf("device.retrying")[0]!;
  assert.equal(retrying.deadline, at("2026-01-11T02:00:00Z"), "the retry goes at the next opening");
  assert.equal(h.sendsOf("initiate", 1).length, 1, "no retry outside the window");
  assert.equal(h.engine.waitingForWindow(h.ids[1]!, 1), true);
  assert.equal(h.engine.summary().windows!.waiting, 1);
  h.clock.run();
  assert.deepEqual(h.sendsOf("initiate", 1).map((s) => [s.attempt, s.at]), [
    [1, at("2026-01-10T02:00:00Z")],
    [2, at("2026-01-11T02:00:00Z")],
  ]);
  assert.equal(h.engine.state, "completed");
});

Deno.test("windows: a response timeout after the window closed retries at the next opening", () => {
  const h = harness({
    policy: `stages: [{ percent: 100 }]
retry: { attempts: 2, backoff: 30s, maxBackoff: 30s }
timeouts: { response: 10m }
windows:
  open:
    - { start: "0 2 * * *", duration: 5m }`,
    devices: 1,
    clock: new SimClock(JAN10),
    answer: (send) => send.attempt === 1 && send.kind === "initiate" ? null : HAPPY(send),
  }).run();
  assert.equal(h.eventsOf("device.timed_out").length, 1);
  assert.deepEqual(h.sendsOf("initiate").map((s) => s.at), [
    at("2026-01-10T02:00:00Z"),
    at("2026-01-11T02:00:00Z"),
  ]);
  assert.equal(h.engine.state, "completed");
});

Deno.test("windows: at close, finish sends the ACTIVATE; hold keeps it for the next window", async (t) => {
  // The device's 0x00 comes three minutes after INITIATE, when the two-minute window has closed.
  const policy = (onClose: string) =>
    `stages: [{ percent: 100 }]
windows:
  onClose: ${onClose}
  open:
    - { start: "0 2 * * *", duration: 2m }`;
  const answer = (send: { kind: string }) =>
    send.kind === "initiate" ? { status: 0x00, after: 3 * M } : { status: 0x10 };
  await t.step("finish", () => {
    const h = harness({ policy: policy("finish"), devices: 1, answer, clock: new SimClock(JAN10) })
      .run();
    assert.equal(h.sendsOf("activate")[0]!.at, at("2026-01-10T02:03:00Z"));
    assert.equal(h.engine.state, "completed");
  });
  await t.step("hold", () => {
    const h = harness({ policy: policy("hold"), devices: 1, answer, clock: new SimClock(JAN10) });
    h.engine.start();
    h.clock.run({ until: at("2026-01-10T12:00:00Z") });
    assert.equal(h.sendsOf("activate").length, 0);
    assert.equal(h.engine.waitingForWindow(h.ids[0]!, 0), true);
    assert.equal(h.engine.summary().windows!.waiting, 1);
    assert.equal(h.engine.summary().windows!.onClose, "hold");
    h.clock.run();
    assert.equal(h.sendsOf("activate")[0]!.at, at("2026-01-11T02:00:00Z"));
    assert.equal(h.engine.state, "completed");
  });
  await t.step("hold, two-phase: the stage's ACTIVATEs wait for the window", () => {
    const h = harness({
      policy: `${policy("hold")}\nactivation: stage`,
      devices: 3,
      answer,
      clock: new SimClock(JAN10),
    });
    h.engine.start();
    h.clock.run({ until: at("2026-01-10T12:00:00Z") });
    assert.equal(h.eventsOf("rollout.stage.activating").length, 1);
    assert.equal(h.sendsOf("activate").length, 0);
    assert.equal(h.engine.summary().windows!.waiting, 3);
    assert.equal(h.engine.waitingForWindow(h.ids[2]!, 2), true);
    h.clock.run();
    assert.deepEqual(
      h.sendsOf("activate").map((s) => s.at),
      Array(3).fill(at("2026-01-11T02:00:00Z")),
    );
    assert.equal(h.engine.state, "completed");
  });
});

Deno.test("windows by tag value: each device starts in its own group's window, none blocks another", () => {
  const policy = `stages: [{ percent: 100 }]
concurrency: 2
windows:
  by: site
  groups:
    berlin: [{ start: "0 1 * * *", duration: 1h, timeZone: Europe/Berlin }]
    tokyo: [{ start: "0 1 * * *", duration: 1h, timeZone: Asia/Tokyo }]`;
  const groups = Array.from({ length: 10 }, (_, i) => i % 2);
  const h = harness({
    policy,
    devices: 10,
    windowGroups: groups,
    answer: HAPPY,
    clock: new SimClock(at("2026-01-10T02:00:00Z")),
  });
  h.engine.start();
  // Berlin's 01:00 (00:00Z) is past; Tokyo's 01:00 (16:00Z) comes first: its five devices go first.
  h.clock.advance(at("2026-01-10T23:00:00Z") - h.clock.now());
  const early = h.sendsOf("initiate");
  assert.deepEqual(early.map((s) => s.index), [1, 3, 5, 7, 9]);
  const status = h.engine.summary().windows!.groups;
  assert.deepEqual(status.map((g) => [g.group, g.open, g.waiting]), [
    ["berlin", false, 5],
    ["tokyo", false, 0],
  ]);
  assert.equal(status[0]!.nextOpen, at("2026-01-11T00:00:00Z"));
  h.clock.run();
  assert.equal(h.engine.state, "completed");
  const calendars = policyOf(policy).windows!.groups!;
  const berlin = new WindowCalendar(calendars.berlin!);
  const tokyo = new WindowCalendar(calendars.tokyo!);
  for (const send of h.sendsOf("initiate")) {
    assert.ok((send.index % 2 === 0 ? berlin : tokyo).isOpen(send.at), `device ${send.index}`);
  }
});

Deno.test("windows: a device whose group never opens is not contacted and is counted as unmatched", () => {
  const h = harness({
    policy: `stages: [{ percent: 100 }]
windows:
  by: site
  groups:
    berlin: [{ start: "0 1 * * *", duration: 1h, timeZone: Europe/Berlin }]`,
    devices: 3,
    windowGroups: [0, NO_WINDOW, 0],
    answer: HAPPY,
    clock: new SimClock(JAN10),
  });
  h.engine.start();
  h.clock.run({ until: JAN10 + 3 * DAY });
  assert.deepEqual(h.sendsOf("initiate").map((s) => s.index), [0, 2]);
  assert.equal(h.engine.state, "running");
  assert.equal(h.engine.summary().windows!.unmatched, 1);
});

Deno.test("windows: the engine refuses missing or malformed window groups", () => {
  const policy = `stages: [{ percent: 100 }]
windows:
  by: site
  groups:
    a: [{ start: "0 1 * * *", duration: 1h }]`;
  assert.throws(() => harness({ policy, devices: 2 }), /Expected windowGroups/);
  assert.throws(() => harness({ policy, devices: 2, windowGroups: [0] }), /one window group per/);
  assert.throws(
    () => harness({ policy, devices: 2, windowGroups: [0, 1] }),
    /Invalid window group 1/,
  );
});

Deno.test("windows: a restore keeps devices waiting for their window, and none goes outside it", () => {
  const policy = `stages: [{ percent: 100 }]
concurrency: 3
rate: { perMinute: 2 }
retry: { attempts: 3, backoff: 5m, maxBackoff: 5m }
windows:
  by: site
  groups:
    a: [{ start: "0 2 * * *", duration: 10m }]
    b: [{ start: "0 14 * * *", duration: 10m }]`;
  const groups = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const h = harness({
    policy,
    devices: 40,
    windowGroups: groups,
    clock: new SimClock(JAN10),
    answer: (send) => send.index === 4 && send.attempt === 1 ? { status: 0xfe } : HAPPY(send),
  });
  h.engine.start();
  h.clock.run({ until: at("2026-01-10T06:00:00Z") });
  const before = h.engine.summary();
  assert.ok(before.windows!.waiting > 0);
  const snapshot = h.engine.snapshot();
  h.restore(snapshot);
  // The restored engine needs the groups again: the harness passes the same ones.
  h.engine.start();
  assert.equal(h.engine.summary().windows!.waiting, before.windows!.waiting);
  h.clock.run();
  assert.equal(h.engine.state, "completed");
  assert.equal(h.engine.summary().activated, 40);
  const calendars = policyOf(policy).windows!.groups!;
  const open = [new WindowCalendar(calendars.a!), new WindowCalendar(calendars.b!)];
  for (const send of h.sendsOf("initiate")) {
    assert.ok(open[groups[send.index]!]!.isOpen(send.at), `device ${send.index}`);
  }
});

Deno.test("snapshotFromRows() leaves a device with no row pending under windows", () => {
  const policy = policyOf(`stages: [{ percent: 100 }]\n${NIGHTLY}`);
  const ids = ["a", "b", "c"].map((c) => `00000000-0000-4000-8000-00000000000${c}`);
  const row = {
    deviceId: ids[2]!,
    position: 2,
    state: "initiated",
    token: "00".repeat(16),
    attempt: 1,
    deadline: 5,
    lastStatus: null,
  };
  const options = { deviceIds: ids, started: [row], now: 1, token: () => new Uint8Array(16) };
  const windowed = snapshotFromRows("r1", null, { ...options, policy })!;
  assert.deepEqual(windowed.devices.map((d) => d.id), [ids[2]]);
  assert.equal(windowed.cursor, 3);
  const plain = snapshotFromRows("r1", null, {
    ...options,
    policy: policyOf("stages: [{ percent: 100 }]"),
  })!;
  assert.deepEqual(plain.devices.map((d) => d.state), ["retrying", "retrying", "initiated"]);
});

Deno.test("windows across DST: Europe/Berlin's skipped hour, then its repeated hour", async (t) => {
  // 02:30 local for 30 minutes: on 2026-03-29 02:30 does not exist (opens 03:00 CEST = 01:00Z);
  // on 2026-10-25 it happens twice (opens once, at the first: 00:30Z).
  const policy = `stages: [{ percent: 100 }]
rate: { perMinute: 1 }
windows:
  open:
    - { start: "30 2 * * *", duration: 30m, timeZone: Europe/Berlin }`;
  for (
    const [name, start, first, second] of [
      ["spring forward", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
      ["fall back", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
    ] as const
  ) {
    await t.step(name, () => {
      // 45 devices at one a minute: 30 in the first window, 15 in the next night's.
      const h = harness({ policy, devices: 45, answer: HAPPY, clock: new SimClock(at(start)) })
        .run();
      assert.equal(h.engine.state, "completed");
      const times = h.sendsOf("initiate").map((s) => s.at);
      assert.equal(times[0], at(first));
      assert.equal(times[29], at(first) + 29 * M);
      assert.equal(times[30], at(second));
      const calendar = new WindowCalendar(h.policy.windows!.open!);
      assert.ok(times.every((time) => calendar.isOpen(time)));
    });
  }
});

Deno.test("windows: an activation timeout after close re-sends at once with finish, at the next opening with hold", async (t) => {
  // 0x00 after 30 s (inside the two-minute window); the first ACTIVATE goes unanswered, and its
  // five-minute timeout ends at 02:05:30, after the window closed.
  const policy = (onClose: string) =>
    `stages: [{ percent: 100 }]
timeouts: { activation: 5m }
windows:
  onClose: ${onClose}
  open:
    - { start: "0 2 * * *", duration: 2m }`;
  let activations = 0;
  const answer = (send: { kind: string }) =>
    send.kind === "initiate"
      ? { status: 0x00, after: 30_000 }
      : activations++ === 0
      ? null
      : { status: 0x10 };
  for (
    const [onClose, resent] of [
      ["finish", "2026-01-10T02:05:30Z"],
      ["hold", "2026-01-11T02:00:00Z"],
    ] as const
  ) {
    await t.step(onClose, () => {
      activations = 0;
      const h = harness({ policy: policy(onClose), devices: 1, answer, clock: new SimClock(JAN10) })
        .run();
      assert.deepEqual(h.sendsOf("activate").map((s) => s.at), [
        at("2026-01-10T02:00:30Z"),
        at(resent),
      ]);
      assert.equal(h.sendsOf("activate")[0]!.token, h.sendsOf("activate")[1]!.token);
      assert.equal(h.engine.state, "completed");
    });
  }
});
