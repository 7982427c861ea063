// One rollout: live progress over SSE, operator commands, its devices by state and its events.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, query, streamEvents } from "./api.js";
import {
  ArtifactLabel,
  Badge,
  ErrorBanner,
  EventLine,
  Facts,
  html,
  Pager,
  Progress,
  useApi,
  usePages,
  useRole,
  useSession,
  useStatusText,
  when,
  words,
} from "./ui.js";

// Events can arrive by the thousand: the rollout is refetched at most this often.
const REFRESH_MS = 250;
const LIVE_EVENTS = 50;

/** Which rollout states each command applies in. */
const COMMANDS = {
  pause: ["running"],
  resume: ["paused"],
  promote: ["waiting_approval"],
  cancel: ["scheduled", "running", "paused", "waiting_approval"],
};

/** Shortcuts to the device states an operator looks for first. */
const TROUBLE = [
  { state: "failed", label: "Failing" },
  { state: "timed_out", label: "Stuck (timed out)" },
  { state: "retrying", label: "Retrying" },
];

/** Calls `fn` at most once per `ms`, trailing calls coalesced. */
function throttle(fn, ms) {
  let timer;
  let queued = false;
  return function throttled() {
    if (timer) {
      queued = true;
      return;
    }
    fn();
    timer = setTimeout(function release() {
      timer = undefined;
      if (queued) {
        queued = false;
        throttled();
      }
    }, ms);
  };
}

function pauseText(reason) {
  if (reason.kind === "operator") return "Paused by an operator.";
  const figures = Object.entries(reason).filter(([key]) => key !== "kind").map(([k, v]) =>
    `${k} ${v}`
  );
  const why = reason.kind === "failure_threshold"
    ? "The failure threshold tripped"
    : "The stage finished below its success minimum";
  return `${why} (${figures.join(", ")}). Resume to go on.`;
}

function Banners({ r }) {
  const statusText = useStatusText();
  const out = [];
  if (r.state === "halted" && r.haltReason) {
    const device = r.haltReason.device;
    out.push(html`<div class="banner halt" id="halt-reason" role="alert">
      <strong>Halted</strong>${r.haltReason.message}
      ${
      device
        ? html`<div>Device <a class="mono" href=${`#/devices/${device}`}>${device}</a>${
          r.haltReason.status !== undefined ? ` status ${statusText(r.haltReason.status)}` : ""
        }</div>`
        : null
    }
    </div>`);
  }
  if (r.state === "paused") {
    out.push(html`<div class="banner pause" id="pause-reason">
      <strong>Paused</strong>${r.pauseReason ? pauseText(r.pauseReason) : "Paused."}
    </div>`);
  }
  if (r.state === "waiting_approval") {
    out.push(html`<div class="banner pause">
      <strong>Waiting for approval</strong>Stage ${r.stage + 1} is done: promote to go on.
    </div>`);
  }
  if (r.state === "scheduled") {
    out.push(html`<div class="banner info" id="scheduled">
      <strong>Scheduled</strong>Starts by itself ${when(r.startAt)}; nothing is sent until then.
      Cancel to call it off.
    </div>`);
  }
  if (r.dynamic) {
    out.push(html`<div class="banner info" id="dynamic">
      <strong>Dynamic</strong>Devices that come to match its targets join its last stage (${r.joined} joined so far).
    </div>`);
  }
  if (r.bakeUntil && r.state === "running") {
    out.push(html`<div class="banner info" id="bake">
      <strong>Baking</strong>Stage ${r.stage + 1} bakes until ${when(r.bakeUntil)}.
    </div>`);
  }
  return out;
}

/** The policy's maintenance windows: each group's next opening and the devices waiting for it. */
function Windows({ r }) {
  const { states } = useSession();
  const w = r.windows;
  if (!w) return null;
  const name = (group) => group ?? (w.by ? "other values" : "every device");
  return html`
    <section aria-labelledby="windows-heading" id="windows">
      <h2 id="windows-heading">Maintenance windows${w.by ? ` by ${w.by}` : ""}</h2>
      <p class="muted">
          <span id="windows-waiting">${w.waiting}</span> device${w.waiting === 1
            ? ""
            : "s"} ${words(
              states.waitReasons[0],
            )}; a device in flight when its window closes ${w.onClose === "hold"
            ? "waits for the next window to activate"
            : "finishes"}.${w.unmatched > 0
            ? ` ${w.unmatched} match no window and never start.`
            : ""}
        </p>
      <table id="window-groups">
        <caption class="sr-only">Maintenance window groups</caption>
        <thead>
          <tr>
            <th scope="col">Group</th>
            <th scope="col">Window</th>
            <th scope="col">Waiting</th>
          </tr>
        </thead>
        <tbody>
            ${w.groups.map((g) =>
              html`
                <tr data-group=${g.group ?? ""}>
                  <td>${name(g.group)}</td>
                  <td>${g.open
                    ? `open until ${g.nextClose ? when(g.nextClose) : "further notice"}`
                    : `next opens ${g.nextOpen ? when(g.nextOpen) : "never"}`}</td>
                  <td>${g.waiting}</td>
                </tr>
              `
            )}
          </tbody>
      </table>
    </section>
  `;
}

function Timeline({ r }) {
  const { states } = useSession();
  if (!r.stages) {
    return html`<p class="muted">
      Stage ${r.stage + 1}. This rollout's policy has no stages to show.
    </p>`;
  }
  const finished = states.finalRolloutStates.includes(r.state);
  return html`<div class="timeline" id="timeline">
    ${
    r.stages.map((s, i) => {
      const done = i < r.stage || (finished && i === r.stage && s.pending + s.inFlight === 0);
      const cls = done ? "stage done" : i === r.stage && !finished ? "stage current" : "stage";
      return html`
        <div class=${cls} data-stage=${i}>
          <h3><span>Stage ${i + 1}</span><span>${s.percent}%</span></h3>
          <${Progress}
            counts=${{ activated: s.activated, failed: s.failed, initiated: s.inFlight }}
            total=${s.devices}
            label=${`Stage ${i + 1} progress`}
          />
          <${Facts} pairs=${[
            ["devices", s.devices],
            ["activated", s.activated],
            ["failed", s.failed],
            ["in flight", s.inFlight],
            ["received", s.received],
            ["pending", s.pending],
            ["cancelled", s.cancelled],
          ]} />
        </div>
      `;
    })
  }
  </div>`;
}

function Commands({ r, onDone }) {
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState("");
  async function run(name) {
    if (name === "cancel" && !confirm("Cancel this rollout? Devices keep what they run.")) return;
    setMessage("");
    setBusy(true);
    try {
      onDone(await api("POST", `/v1/rollouts/${r.id}/${name}`));
    } catch (error) {
      setMessage(`${name}: ${error.message}`);
    } finally {
      setBusy(false);
    }
  }
  return html`<div class="actions" role="group" aria-label="Commands">
    ${
    Object.entries(COMMANDS).map(([name, applies]) =>
      html`
        <button
          type="button"
          data-command=${name}
          class=${name === "cancel" ? "danger" : ""}
          disabled=${busy || !applies.includes(r.state)}
          onClick=${() => run(name)}
        >${name[0].toUpperCase() + name.slice(1)}</button>
      `
    )
  }
    <span class="error" id="command-error" role="alert">${message}</span>
  </div>`;
}

function Devices({ r }) {
  const { states } = useSession();
  const statusText = useStatusText();
  const [state, setState] = useState("");
  const pages = usePages(
    (cursor) => `/v1/rollouts/${r.id}/devices${query({ state, cursor, limit: 50 })}`,
    state,
  );
  // The figures move while it runs: the shown page follows them.
  const { reload } = pages;
  useEffect(() => void reload(), [r.updatedAt, r.counts.activated, r.counts.failed]);
  const items = pages.data?.items ?? [];
  return html`<section aria-labelledby="devices-heading">
    <h2 id="devices-heading">Devices</h2>
    <div class="toolbar" role="group" aria-label="Filter devices by state">
      <button type="button" aria-pressed=${state === ""} onClick=${() => setState("")}>All</button>
      ${
    TROUBLE.map((t) =>
      html`
        <button
          type="button"
          data-filter=${t.state}
          aria-pressed=${state === t.state}
          onClick=${() => setState(t.state)}
        >${t.label} (${r.counts[t.state] ?? 0})</button>
      `
    )
  }
      <label>State
        <select id="device-state" value=${state} onChange=${(e) => setState(e.currentTarget.value)}>
          <option value="">any</option>
          ${states.deviceStates.map((s) => html`<option value=${s}>${words(s)}</option>`)}
        </select>
      </label>
    </div>
    <${ErrorBanner} error=${pages.error} />
    <table id="rollout-devices">
      <caption class="sr-only">The rollout's devices${
    state ? ` in state ${words(state)}` : ""
  }</caption>
      <thead><tr>
        <th scope="col">#</th><th scope="col">Device</th><th scope="col">State</th>
        ${r.action === "rollback" ? html`<th scope="col">Back to</th>` : null}
        <th scope="col">Attempts</th><th scope="col">Last status</th><th scope="col">Updated</th>
      </tr></thead>
      <tbody>
        ${
    items.map((d) =>
      html`
        <tr data-device=${d.deviceId}>
          <td>${d.position + 1}</td>
          <td><a class="mono" href=${`#/devices/${d.deviceId}`}>${d.deviceId}</a></td>
          <td>
            <${Badge} state=${d.state} />${d.waitReason
              ? html`<span class="muted wait-reason">${` ${words(d.waitReason)}`}</span>`
              : null}
          </td>
          ${r.action === "rollback"
            ? html`<td class="mono" title=${d.digest ?? "no previous version recorded"}>${
              d.digest ? `${d.digest.slice(0, 16)}…` : "none"
            }</td>`
            : null}
          <td>${d.attempt}</td>
          <td>${statusText(d.lastStatus)}</td>
          <td>${when(d.updatedAt)}</td>
        </tr>
      `
    )
  }
      </tbody>
    </table>
    ${
    pages.data && items.length === 0
      ? html`<p class="muted" id="no-devices">No device${state ? ` is ${words(state)}` : ""}.</p>`
      : null
  }
    <${Pager} pages=${pages} label="Devices" />
  </section>`;
}

function Events({ id, live }) {
  const pages = usePages(
    (before) => `/v1/rollouts/${id}/events${query({ before, limit: 50 })}`,
    id,
  );
  const older = pages.data?.items ?? [];
  // Live events are shown above the first page only; later pages are history as stored.
  const fresh = pages.page === 1 ? live.filter((e) => !older.some((o) => o.id === e.id)) : [];
  const shown = [...fresh, ...older];
  return html`<section aria-labelledby="events-heading">
    <h2 id="events-heading">Events</h2>
    <${ErrorBanner} error=${pages.error} />
    <ol class="events" id="events">
      ${
    shown.map((event) => html`<${EventLine} key=${event.id} event=${event} rolloutLink=${false} />`)
  }
    </ol>
    ${pages.data && shown.length === 0 ? html`<p class="muted">No events yet.</p>` : null}
    <${Pager} pages=${pages} label="Events" newerText="Newer events" olderText="Older events" />
  </section>`;
}

export function RolloutPage({ id }) {
  const operator = useRole("operator");
  const { states } = useSession();
  const rollout = useApi(`/v1/rollouts/${id}`);
  const [live, setLive] = useState(false);
  const [recent, setRecent] = useState([]);
  const [shown, setShown] = useState(null);
  const reload = useRef(rollout.reload);
  reload.current = rollout.reload;
  useEffect(() => setShown(rollout.data), [rollout.data]);
  const refresh = useMemo(() => throttle(() => reload.current(), REFRESH_MS), []);
  useEffect(() =>
    streamEvents({ rollout: id }, {
      onEvent(type, event) {
        setRecent((old) => [{ ...event, type }, ...old].slice(0, LIVE_EVENTS));
        refresh();
      },
      onState(connected) {
        setLive(connected);
        if (connected) refresh();
      },
    }), [id]);
  const r = shown;
  if (!r) {
    return html`<p><a href="#/rollouts">← Rollouts</a></p>
      <${ErrorBanner} error=${rollout.error} />
      ${rollout.error ? null : html`<p class="muted">Loading…</p>`}`;
  }
  const activated = r.counts.activated ?? 0;
  return html`
    <p><a href="#/rollouts">← Rollouts</a></p>
        <h1>
          ${r.name ?? "Rollout"}
          <span id="state"><${Badge} state=${r.state} /></span>
          <span class=${live ? "live on" : "live"}>${live ? "live" : "reconnecting"}</span>
        </h1>
        <p class="mono small">${r.id}</p>
        ${r.description ? html`<p class="description">${r.description}</p>` : null}
        ${operator ? html`<${Commands} r=${r} onDone=${setShown} />` : null}
        <${Banners} r=${r} />
        <div class="card">
      <div class="actions">
        <strong id="progress-text">${activated} of ${r.devices} activated</strong>
        <span class="muted">
              ${r.counts.failed ?? 0} failed · stage ${r.stage + 1}${r.stages
                ? ` of ${r.stages.length}`
                : ""}
            </span>
      </div>
      <${Progress} counts=${r.counts} total=${r.devices} label="Rollout progress" big=${true} />
    </div>
        <h2>Stages</h2>
        <${Timeline} r=${r} />
        <${Windows} r=${r} />
        <h2>Devices by state</h2>
        <div class="counts" id="counts">
          ${states.deviceStates.map((state) =>
            html`
              <div class="count" data-state=${state}>
                <div class="n">${r.counts[state] ?? 0}</div>
                <div class="k">${words(state)}</div>
              </div>
            `
          )}
        </div>
        <h2>Rollout</h2>
        <div class="card">
      <${Facts} pairs=${[
        ...(r.artifact
          ? [
            [
              "artifact",
              html`<${ArtifactLabel} artifact=${r.artifact} /> <span class="mono">${r.artifact.digest}</span>`,
            ],
            ["url", html`<span class="mono">${r.artifact.url}</span>`],
          ]
          : r.action === "rotate-key"
          ? [[
            "action",
            html`
              <span
                id="rotate-key">key rotation: each device trusts server key <span class="mono">${r
                  .serverKey}</span></span>
            `,
          ]]
          : [[
            "action",
            html`<span id="rollback">rollback: each device goes back to its previous version</span>`,
          ]]),
        ...(r.rollbackOf
          ? [[
            "rolls back",
            html`<a id="rollback-of" href=${`#/rollouts/${r.rollbackOf}`}>${r.rollbackOf}</a>`,
          ]]
          : []),
        ...(r.rolledBackBy.length > 0
          ? [[
            "rolled back by",
            html`<span id="rolled-back-by">${
              r.rolledBackBy.map((id) =>
                html`
                  <a href=${`#/rollouts/${id}`}>${id}</a>
                `
              )
            }</span>`,
          ]]
          : []),
        [
          "policy",
          `${r.policy.name} (sha256 ${r.policy.sha256.slice(0, 12)}…${
            r.policy.commit ? `, commit ${r.policy.commit.slice(0, 10)}` : ""
          })`,
        ],
        ["created by", r.createdBy ?? "unknown"],
        ["created", when(r.createdAt)],
        ["updated", when(r.updatedAt)],
      ]} />
    </div>
        <${Devices} r=${r} />
        <${Events} id=${id} live=${recent} />
  `;
}
