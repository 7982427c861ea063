import assert from "node:assert/strict";
import {
  formatIssue,
  type MaintenanceWindow,
  NO_WINDOW,
  parsePolicy,
  PolicyError,
  validatePolicy,
  WindowCalendar,
  windowGrouper,
  windowGroupNames,
} from "../../policies/mod.ts";

const H = 3_600_000;
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();

function problems(text: string): string[] {
  try {
    parsePolicy(`name: w\nstages: [{ percent: 100 }]\n${text}`, { source: "p.yaml" });
  } catch (error) {
    assert.ok(error instanceof PolicyError);
    return error.issues.map(formatIssue);
  }
  assert.fail("the policy parsed");
}

function calendar(...windows: [string, number, string][]): WindowCalendar {
  return new WindowCalendar(
    windows.map(([start, duration, timeZone]): MaintenanceWindow => ({
      start,
      duration,
      timeZone,
    })),
  );
}

Deno.test("parsePolicy() reads windows with defaults: UTC and onClose finish", () => {
  const { policy } = parsePolicy(`name: w
stages: [{ percent: 100 }]
windows:
  open:
    - { start: "0 2 * * *", duration: 4h }
`);
  assert.deepEqual(policy.windows, {
    open: [{ start: "0 2 * * *", duration: 4 * H, timeZone: "UTC" }],
    onClose: "finish",
  });
});

Deno.test("windows: each bad value gets its own error at its line", async (t) => {
  await t.step("a cron that is not 5 fields", () => {
    assert.deepEqual(
      problems(`windows:\n  open:\n    - start: "0 0 2 * * *"\n      duration: 4h\n`),
      [
        `p.yaml:5: windows.open[0].start: Invalid cron "0 0 2 * * *": use 5 fields (minute hour day-of-month month day-of-week): mode '5-part' requires exactly 5 parts, but pattern '0 0 2 * * *' has 6 parts`,
      ],
    );
  });
  await t.step("a value out of range, and a cron that never fires", () => {
    assert.match(
      problems(`windows: { open: [{ start: "61 2 * * *", duration: 1h }] }\n`)[0]!,
      /^p\.yaml:3: windows\.open\[0\]\.start: Invalid cron "61 2 \* \* \*": .*minute: 61$/,
    );
    assert.deepEqual(problems(`windows: { open: [{ start: "0 0 30 2 *", duration: 1h }] }\n`), [
      `p.yaml:3: windows.open[0].start: Cron "0 0 30 2 *" never fires`,
    ]);
  });
  await t.step("an unknown time zone", () => {
    assert.deepEqual(
      problems(
        `windows:\n  open:\n    - start: "0 2 * * *"\n      duration: 4h\n      timeZone: Europe/Berlinn\n`,
      ),
      [
        `p.yaml:7: windows.open[0].timeZone: Unknown time zone "Europe/Berlinn": use an IANA name such as "Europe/Berlin"`,
      ],
    );
  });
  await t.step("a zero duration and one over a week", () => {
    assert.deepEqual(problems(`windows:\n  open:\n    - { start: "0 2 * * *", duration: 0s }\n`), [
      `p.yaml:5: windows.open[0].duration: Must be longer than 0`,
    ]);
    assert.deepEqual(
      problems(`windows:\n  open:\n    - { start: "0 2 * * *", duration: 7d1m }\n`),
      [
        `p.yaml:5: windows.open[0].duration: Must be at most 7d (a week): got 7d1m`,
      ],
    );
    assert.deepEqual(problems(`windows:\n  open:\n    - { start: "0 2 * * *", duration: 30d }\n`), [
      `p.yaml:5: windows.open[0].duration: Must be at most 7d (a week): got 30d`,
    ]);
    assert.equal(
      parsePolicy(
        `name: w\nstages: [{ percent: 100 }]\nwindows: { open: [{ start: "0 2 * * 1", duration: 7d }] }\n`,
      )
        .policy.windows!.open![0]!.duration,
      7 * 24 * H,
    );
  });
  await t.step("by without groups, groups without by, nothing at all, an unknown key", () => {
    assert.deepEqual(problems(`windows:\n  by: site\n`), [
      `p.yaml:3: windows.groups: Needs the windows of each "site" value`,
    ]);
    assert.deepEqual(
      problems(`windows:\n  groups:\n    a: [{ start: "0 2 * * *", duration: 1h }]\n`),
      [`p.yaml:4: windows.groups: Needs "by": the tag to group by`],
    );
    assert.deepEqual(problems(`windows: {}\n`), [
      `p.yaml:3: windows.open: Needs a list of windows`,
    ]);
    assert.deepEqual(problems(`windows:\n  open: []\n  onClose: wait\n`), [
      `p.yaml:4: windows.open: Needs at least one window`,
      `p.yaml:5: windows.onClose: Invalid option: expected one of "finish"|"hold"`,
    ]);
  });
  await t.step(
    "an inline policy gets the same messages, as checks beyond JSON Schema (422)",
    () => {
      const inline = (window: Record<string, string>) => {
        try {
          validatePolicy({ name: "w", stages: [{ percent: 100 }], windows: { open: [window] } });
        } catch (error) {
          assert.ok(error instanceof PolicyError);
          return error;
        }
        assert.fail("the policy validated");
      };
      const zone = inline({ start: "0 2 * * *", duration: "1h", timeZone: "Nowhere" });
      assert.match(zone.message, /windows\.open\[0\]\.timeZone: Unknown time zone "Nowhere"/);
      // The API's JSON Schema says "a string": a fuzzer's schema-valid policy gets 422, not 400.
      assert.equal(zone.inconsistent, true);
      assert.equal(inline({ start: "0 2 * *", duration: "1h" }).inconsistent, true);
      assert.equal(inline({ start: "0 2 * * *", duration: "8d" }).inconsistent, true);
    },
  );
});

Deno.test("WindowCalendar: a window that spans midnight", () => {
  // 22:00 to 02:00 in Berlin (CET, UTC+1, in January).
  const c = calendar(["0 22 * * *", 4 * H, "Europe/Berlin"]);
  assert.equal(c.isOpen(at("2026-01-10T20:59:59Z")), false);
  assert.equal(c.isOpen(at("2026-01-10T21:00:00Z")), true);
  assert.equal(c.isOpen(at("2026-01-10T23:30:00Z")), true, "after midnight UTC");
  assert.equal(c.isOpen(at("2026-01-11T00:59:59Z")), true, "01:59 local, the next day");
  assert.equal(c.isOpen(at("2026-01-11T01:00:00Z")), false, "02:00 local: closed");
  assert.equal(iso(c.nextClose(at("2026-01-10T23:30:00Z"))), "2026-01-11T01:00:00.000Z");
  assert.equal(iso(c.nextOpen(at("2026-01-11T01:00:00Z"))), "2026-01-11T21:00:00.000Z");
  assert.equal(iso(c.nextOpen(at("2026-01-10T23:30:00Z"))), "2026-01-10T23:30:00.000Z");
  assert.equal(iso(c.nextClose(at("2026-01-11T12:00:00Z"))), "2026-01-11T12:00:00.000Z");
});

Deno.test("WindowCalendar: Europe/Berlin spring forward, 2026-03-29", () => {
  // 02:00 CET jumps to 03:00 CEST. A window 01:00 local, 3h of elapsed time.
  const c = calendar(["0 1 * * *", 3 * H, "Europe/Berlin"]);
  assert.equal(iso(c.nextOpen(at("2026-03-28T12:00:00Z"))), "2026-03-29T00:00:00.000Z");
  // 3h after 01:00 CET is 05:00 CEST: the duration is elapsed time, not wall-clock hours.
  assert.equal(iso(c.nextClose(at("2026-03-29T00:00:00Z"))), "2026-03-29T03:00:00.000Z");
  // The next night it opens at 01:00 CEST, an hour earlier in UTC.
  assert.equal(iso(c.nextOpen(at("2026-03-29T12:00:00Z"))), "2026-03-29T23:00:00.000Z");
  // A start in the skipped hour (02:30) opens at the first valid time after the gap, 03:00 CEST.
  const gap = calendar(["30 2 * * *", H, "Europe/Berlin"]);
  assert.equal(iso(gap.nextOpen(at("2026-03-28T12:00:00Z"))), "2026-03-29T01:00:00.000Z");
  assert.equal(gap.isOpen(at("2026-03-29T01:59:00Z")), true);
  assert.equal(gap.isOpen(at("2026-03-29T02:00:00Z")), false);
});

Deno.test("WindowCalendar: Europe/Berlin fall back, 2026-10-25", () => {
  // 03:00 CEST falls back to 02:00 CET: 02:30 happens twice; the window opens once, at the first.
  const c = calendar(["30 2 * * *", H, "Europe/Berlin"]);
  assert.equal(iso(c.nextOpen(at("2026-10-24T12:00:00Z"))), "2026-10-25T00:30:00.000Z");
  assert.equal(c.isOpen(at("2026-10-25T01:29:00Z")), true);
  assert.equal(c.isOpen(at("2026-10-25T01:30:00Z")), false, "the second 02:30 opens nothing");
  assert.equal(iso(c.nextOpen(at("2026-10-25T01:30:00Z"))), "2026-10-26T01:30:00.000Z");
  // 01:00 CEST for 3h of elapsed time closes at 03:00 CET (02:00Z), wall clock 2h later.
  const night = calendar(["0 1 * * *", 3 * H, "Europe/Berlin"]);
  assert.equal(iso(night.nextOpen(at("2026-10-24T12:00:00Z"))), "2026-10-24T23:00:00.000Z");
  assert.equal(iso(night.nextClose(at("2026-10-24T23:00:00Z"))), "2026-10-25T02:00:00.000Z");
});

Deno.test("WindowCalendar: America/New_York across both DST changes and midnight", () => {
  const c = calendar(["0 22 * * *", 6 * H, "America/New_York"]);
  // 2026-03-07 22:00 EST is 03:00Z; the clocks go forward at 02:00 during the window.
  assert.equal(iso(c.nextOpen(at("2026-03-07T12:00:00Z"))), "2026-03-08T03:00:00.000Z");
  assert.equal(iso(c.nextClose(at("2026-03-08T03:00:00Z"))), "2026-03-08T09:00:00.000Z");
  // The next night it opens at 22:00 EDT, 02:00Z.
  assert.equal(iso(c.nextOpen(at("2026-03-08T12:00:00Z"))), "2026-03-09T02:00:00.000Z");
  // Fall back on 2026-11-01: 22:00 EDT on Oct 31 is 02:00Z; the next night 22:00 EST is 03:00Z.
  assert.equal(iso(c.nextOpen(at("2026-10-31T12:00:00Z"))), "2026-11-01T02:00:00.000Z");
  assert.equal(c.isOpen(at("2026-11-01T07:59:00Z")), true);
  assert.equal(c.isOpen(at("2026-11-01T08:00:00Z")), false);
  assert.equal(iso(c.nextOpen(at("2026-11-01T12:00:00Z"))), "2026-11-02T03:00:00.000Z");
});

Deno.test("WindowCalendar: overlapping windows close together; back-to-back ones never close", () => {
  const c = calendar(["0 1 * * *", 2 * H, "UTC"], ["0 2 * * *", 2 * H, "UTC"]);
  assert.equal(iso(c.nextClose(at("2026-05-01T01:30:00Z"))), "2026-05-01T04:00:00.000Z");
  const always = calendar(["0 * * * *", H, "UTC"]);
  assert.equal(always.isOpen(at("2026-05-01T01:30:00Z")), true);
  assert.equal(always.nextClose(at("2026-05-01T01:30:00Z")), null);
});

Deno.test("windowGrouper() maps a tag value to its group, the fallback, or NO_WINDOW", () => {
  const w = { start: "0 2 * * *", duration: H, timeZone: "UTC" };
  const grouped = {
    by: "site",
    groups: { berlin: [w], tokyo: [w] },
    onClose: "finish" as const,
  };
  assert.deepEqual(windowGroupNames(grouped), ["berlin", "tokyo"]);
  const group = windowGrouper(grouped);
  assert.deepEqual([group("berlin"), group("tokyo"), group("paris"), group(undefined)], [
    0,
    1,
    NO_WINDOW,
    NO_WINDOW,
  ]);
  const withFallback = { ...grouped, open: [w] };
  assert.deepEqual(windowGroupNames(withFallback), ["berlin", "tokyo", null]);
  assert.deepEqual([windowGrouper(withFallback)("paris"), windowGrouper(withFallback)(null)], [
    2,
    2,
  ]);
  assert.equal(windowGrouper({ open: [w], onClose: "finish" })("anything"), 0);
});
