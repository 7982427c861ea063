// flotilla dashboard: rollouts, live progress over SSE, operator commands and device lookup.
// Every value from the API reaches the DOM through textContent (the h() helper), never as HTML.

const TOKEN_KEY = "flotilla.token";
// Events can arrive by the thousand: the rollout is refetched at most this often.
const REFRESH_MS = 250;
const LIST_POLL_MS = 3000;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10_000;
const RECENT_EVENTS = 30;

// The state words come from the server (actors/states.ts), never a copy.
const { deviceStates: DEVICE_STATES, finalRolloutStates } = await (
  await fetch("/ui/vocabulary.json")
).json();

const STATUS_NAMES = {
  0x00: "success",
  0xfc: "HTTP error",
  0xfd: "server did not respond",
  0xfe: "file not retrieved",
  0xff: "digest mismatch",
  0x10: "activated",
  0x1f: "activation failed",
};
const COMMANDS = {
  pause: ["running"],
  resume: ["paused"],
  promote: ["waiting_approval"],
  cancel: ["running", "paused", "waiting_approval"],
};

const view = document.getElementById("view");
// Whatever the current view runs (timers, streams) is stopped when the route changes.
let teardown = () => {};

/** Creates an element; strings among `children` become text nodes. */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (key === "style") element.style.cssText = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** An API error with the server's message and code. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path) {
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token()}`, accept: "application/json" },
  });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy's error page, say; the status line says enough.
  }
  if (!response.ok) {
    const error = body?.error;
    throw new ApiError(
      response.status,
      error?.code ?? "http_error",
      error?.message ?? `${method} ${path} answered ${response.status}`,
    );
  }
  return body;
}

/**
 * Reads `/v1/events` with fetch, since EventSource cannot send the bearer token; reconnects with
 * Last-Event-ID so no event is missed. Returns a function that stops it.
 */
function streamEvents(query, { onEvent, onState }) {
  const controller = new AbortController();
  let lastId;
  let delay = RECONNECT_MIN_MS;

  function dispatch(message) {
    if (message.id !== undefined) lastId = message.id;
    if (message.data === undefined) return;
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    onEvent(message.event ?? "message", data);
  }

  async function readOnce() {
    const headers = { authorization: `Bearer ${token()}`, accept: "text/event-stream" };
    if (lastId !== undefined) headers["last-event-id"] = lastId;
    const response = await fetch(`/v1/events?${query}`, { headers, signal: controller.signal });
    if (!response.ok || !response.body) {
      throw new ApiError(response.status, "http_error", `Event stream answered ${response.status}`);
    }
    onState(true);
    delay = RECONNECT_MIN_MS;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let message = {};
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          dispatch(message);
          message = {};
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") {
          message.data = message.data === undefined ? text : `${message.data}\n${text}`;
        } else if (field === "event") message.event = text;
        else if (field === "id") message.id = text;
      }
    }
  }

  (async () => {
    while (!controller.signal.aborted) {
      try {
        await readOnce();
      } catch (error) {
        if (controller.signal.aborted) return;
        // A refused token will not get better by retrying.
        if (error.status === 401 || error.status === 403) return onState(false);
        console.warn("flotilla: event stream:", error);
      }
      onState(false);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  })();
  return () => controller.abort();
}

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

function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

function statusText(status) {
  if (status === null || status === undefined) return "";
  const hex = `0x${status.toString(16).toUpperCase().padStart(2, "0")}`;
  return STATUS_NAMES[status] ? `${hex} ${STATUS_NAMES[status]}` : hex;
}

function badge(state) {
  return h("span", { class: `badge state-${state}`, "data-state": state }, state.replace("_", " "));
}

/** A bar of activated, failed and in-flight devices out of `total`. */
function progressBar(counts, total, big = false) {
  const share = (n) => `${total ? (100 * n) / total : 0}%`;
  const active = (counts.initiated ?? 0) + (counts.received ?? 0) + (counts.activating ?? 0) +
    (counts.retrying ?? 0);
  return h(
    "div",
    {
      class: big ? "bar big" : "bar",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": total,
      "aria-valuenow": counts.activated ?? 0,
    },
    h("span", { class: "done", style: `width:${share(counts.activated ?? 0)}` }),
    h("span", { class: "failed", style: `width:${share(counts.failed ?? 0)}` }),
    h("span", { class: "active", style: `width:${share(active)}` }),
  );
}

function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.flatMap(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]),
  );
}

/** Sends the user back to sign in when the token was refused; true when it did. */
function signedOut(error) {
  if (error.status !== 401) return false;
  sessionStorage.removeItem(TOKEN_KEY);
  route();
  return true;
}

function showError(error) {
  if (signedOut(error)) return;
  view.replaceChildren(
    h("div", { class: "banner halt", role: "alert" }, h("strong", {}, "Error"), error.message),
  );
}

// --- Views -----------------------------------------------------------------------------------

function loginView() {
  const input = h("input", {
    type: "password",
    id: "token",
    placeholder: "API token",
    autocomplete: "off",
    required: true,
  });
  const message = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      class: "card login",
      async onsubmit(event) {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        try {
          await api("GET", "/v1/server");
          route();
        } catch (error) {
          sessionStorage.removeItem(TOKEN_KEY);
          message.textContent = error.message;
        }
      },
    },
    h("h1", {}, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "Enter an API token. It is kept in this tab's session storage only.",
    ),
    input,
    h("button", { type: "submit", class: "primary" }, "Continue"),
    message,
  );
  view.replaceChildren(form);
  input.focus();
}

function listView() {
  const body = h("tbody");
  const status = h("p", { class: "muted" }, "Loading rollouts…");
  view.replaceChildren(
    h("h1", {}, "Rollouts"),
    status,
    h(
      "table",
      { id: "rollouts" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Rollout", "State", "Stage", "Progress", "Policy", "Created"].map((t) => h("th", {}, t)),
        ),
      ),
      body,
    ),
  );
  async function load() {
    try {
      const page = await api("GET", "/v1/rollouts?limit=100");
      status.textContent = page.items.length ? "" : "No rollouts yet.";
      body.replaceChildren(
        ...page.items.map((r) => {
          const stages = r.stages ? `${r.stage + 1} of ${r.stages.length}` : String(r.stage + 1);
          return h(
            "tr",
            { "data-id": r.id },
            h("td", {}, h("a", { href: `#/rollouts/${r.id}`, class: "mono" }, shortId(r.id))),
            h("td", {}, badge(r.state)),
            h("td", {}, stages),
            h(
              "td",
              {},
              progressBar(r.counts, r.devices),
              h("span", { class: "muted" }, `${r.counts.activated ?? 0} / ${r.devices}`),
            ),
            h("td", {}, r.policy.name),
            h("td", {}, when(r.createdAt)),
          );
        }),
      );
    } catch (error) {
      if (!signedOut(error)) status.textContent = error.message;
    }
  }
  load();
  const timer = setInterval(load, LIST_POLL_MS);
  return () => clearInterval(timer);
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

function banners(r) {
  const out = [];
  if (r.state === "halted" && r.haltReason) {
    const detail = [];
    if (r.haltReason.device) {
      detail.push(
        h("a", { href: `#/devices/${r.haltReason.device}`, class: "mono" }, r.haltReason.device),
      );
    }
    if (r.haltReason.status !== undefined) {
      detail.push(` status ${statusText(r.haltReason.status)}`);
    }
    out.push(
      h(
        "div",
        { class: "banner halt", id: "halt-reason", role: "alert" },
        h("strong", {}, "Halted"),
        r.haltReason.message,
        detail.length ? h("div", {}, "Device ", ...detail) : null,
      ),
    );
  }
  if (r.state === "paused") {
    out.push(
      h(
        "div",
        { class: "banner pause", id: "pause-reason" },
        h("strong", {}, "Paused"),
        r.pauseReason ? pauseText(r.pauseReason) : "Paused.",
      ),
    );
  }
  if (r.state === "waiting_approval") {
    out.push(
      h(
        "div",
        { class: "banner pause" },
        h("strong", {}, "Waiting for approval"),
        `Stage ${r.stage + 1} is done: promote to go on.`,
      ),
    );
  }
  if (r.bakeUntil && r.state === "running") {
    out.push(
      h(
        "div",
        { class: "banner info", id: "bake" },
        h("strong", {}, "Baking"),
        `Stage ${r.stage + 1} bakes until ${when(r.bakeUntil)}.`,
      ),
    );
  }
  return out;
}

function timeline(r) {
  if (!r.stages) {
    return h(
      "p",
      { class: "muted" },
      `Stage ${
        r.stage + 1
      }. Per-stage figures are shown while the rollout is driven by this server.`,
    );
  }
  const finished = finalRolloutStates.includes(r.state);
  return h(
    "div",
    { class: "timeline", id: "timeline" },
    r.stages.map((s, i) => {
      const done = i < r.stage || (finished && i === r.stage && s.pending + s.inFlight === 0);
      const cls = done ? "stage done" : i === r.stage && !finished ? "stage current" : "stage";
      return h(
        "div",
        { class: cls, "data-stage": i },
        h("h3", {}, h("span", {}, `Stage ${i + 1}`), h("span", {}, `${s.percent}%`)),
        progressBar({ activated: s.activated, failed: s.failed, initiated: s.inFlight }, s.devices),
        h(
          "dl",
          {},
          [
            ["devices", s.devices],
            ["activated", s.activated],
            ["failed", s.failed],
            ["in flight", s.inFlight],
            ["received", s.received],
            ["pending", s.pending],
            ["cancelled", s.cancelled],
          ]
            .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
        ),
      );
    }),
  );
}

function rolloutView(id) {
  let stopped = false;
  const message = h("span", { class: "error", id: "command-error", role: "alert" });
  const live = h("span", { class: "live" }, "connecting");
  const recent = h("ol", { class: "events", id: "events" });
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const buttons = Object.keys(COMMANDS).map((name) =>
    h("button", {
      type: "button",
      "data-command": name,
      class: name === "cancel" ? "danger" : "",
      disabled: true,
      async onclick() {
        if (name === "cancel" && !confirm("Cancel this rollout? Devices keep what they run.")) {
          return;
        }
        message.textContent = "";
        for (const b of buttons) b.disabled = true;
        try {
          render(await api("POST", `/v1/rollouts/${id}/${name}`));
        } catch (error) {
          if (signedOut(error)) return;
          message.textContent = `${name}: ${error.message}`;
          refresh();
        }
      },
    }, name[0].toUpperCase() + name.slice(1))
  );
  const state = h("span", { id: "state" });
  const title = h("h1", {}, "Rollout ", h("span", { class: "mono" }, id), state, live);
  view.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← Rollouts")),
    title,
    h("div", { class: "actions" }, buttons, message),
    body,
  );

  function render(r) {
    if (stopped) return;
    state.replaceChildren(badge(r.state));
    for (const b of buttons) b.disabled = !COMMANDS[b.dataset.command].includes(r.state);
    const total = r.devices;
    const activated = r.counts.activated ?? 0;
    body.replaceChildren(
      ...banners(r),
      h(
        "div",
        { class: "card" },
        h(
          "div",
          { class: "actions" },
          h("strong", { id: "progress-text" }, `${activated} of ${total} activated`),
          h(
            "span",
            { class: "muted" },
            `${r.counts.failed ?? 0} failed · stage ${r.stage + 1}${
              r.stages ? ` of ${r.stages.length}` : ""
            }`,
          ),
        ),
        progressBar(r.counts, total, true),
      ),
      h("h2", {}, "Stages"),
      timeline(r),
      h("h2", {}, "Devices by state"),
      h(
        "div",
        { class: "counts", id: "counts" },
        DEVICE_STATES.map((state) =>
          h(
            "div",
            { class: "count", "data-state": state },
            h("div", { class: "n" }, r.counts[state] ?? 0),
            h("div", { class: "k" }, state.replace("_", " ")),
          )
        ),
      ),
      h("h2", {}, "Rollout"),
      h(
        "div",
        { class: "card" },
        facts([
          [
            "policy",
            `${r.policy.name} (sha256 ${r.policy.sha256.slice(0, 12)}…${
              r.policy.commit ? `, commit ${r.policy.commit.slice(0, 10)}` : ""
            })`,
          ],
          ["artifact", h("span", { class: "mono" }, r.artifact.digest)],
          ["url", h("span", { class: "mono" }, r.artifact.url)],
          ["created", when(r.createdAt)],
          ["updated", when(r.updatedAt)],
        ]),
      ),
      h("h2", {}, "Recent events"),
      recent,
    );
  }

  async function load() {
    try {
      render(await api("GET", `/v1/rollouts/${id}`));
    } catch (error) {
      if (!stopped) showError(error);
    }
  }
  const refresh = throttle(load, REFRESH_MS);
  load();
  const stop = streamEvents(`rollout=${encodeURIComponent(id)}`, {
    onEvent(type, event) {
      const who = event.deviceId ? ` ${shortId(event.deviceId)}` : "";
      recent.prepend(h("li", {}, `${new Date(event.at).toLocaleTimeString()} ${type}${who}`));
      while (recent.childElementCount > RECENT_EVENTS) recent.lastElementChild.remove();
      refresh();
    },
    onState(connected) {
      live.className = connected ? "live on" : "live";
      live.textContent = connected ? "live" : "reconnecting";
      if (connected) refresh();
    },
  });
  return () => {
    stopped = true;
    stop();
  };
}

async function deviceView(id) {
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let d;
  try {
    d = await api("GET", `/v1/devices/${encodeURIComponent(id)}`);
  } catch (error) {
    showError(error);
    return;
  }
  const tags = Object.entries(d.tags).map(([k, v]) => `${k}:${v}`).join(", ") || "none";
  view.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← Rollouts")),
    h("h1", {}, "Device ", h("span", { class: "mono" }, d.id)),
    h(
      "div",
      { class: "card", id: "device" },
      facts([
        [
          "current digest",
          h("span", { class: "mono", id: "current-digest" }, d.currentDigest ?? "none"),
        ],
        ["previous digest", h("span", { class: "mono" }, d.previousDigest ?? "none")],
        ["last seen", when(d.lastSeenAt)],
        ["registered", when(d.createdAt)],
        ["tags", tags],
        ["public key", h("span", { class: "mono" }, d.publicKey)],
      ]),
    ),
    h("h2", {}, "Rollout history"),
    d.history.length
      ? h(
        "table",
        { id: "history" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              "Rollout",
              "Rollout state",
              "Device state",
              "Attempts",
              "Last status",
              "Artifact",
              "Updated",
            ].map((t) => h("th", {}, t)),
          ),
        ),
        h(
          "tbody",
          {},
          d.history.map((item) =>
            h(
              "tr",
              {},
              h(
                "td",
                {},
                h(
                  "a",
                  { href: `#/rollouts/${item.rolloutId}`, class: "mono" },
                  shortId(item.rolloutId),
                ),
              ),
              h("td", {}, badge(item.rolloutState)),
              h("td", {}, item.state),
              h("td", {}, item.attempt),
              h("td", {}, statusText(item.lastStatus)),
              h("td", { class: "mono" }, `${item.artifactDigest.slice(0, 16)}…`),
              h("td", {}, when(item.updatedAt)),
            )
          ),
        ),
      )
      : h("p", { class: "muted" }, "This device was in no rollout yet."),
  );
}

// --- Routing ---------------------------------------------------------------------------------

function route() {
  teardown();
  teardown = () => {};
  const signedIn = Boolean(token());
  document.getElementById("sign-out").hidden = !signedIn;
  document.getElementById("lookup").hidden = !signedIn;
  if (!signedIn) return loginView();
  const [, kind, id] = location.hash.match(/^#\/(rollouts|devices)\/([^/]+)$/) ?? [];
  const decoded = id === undefined ? undefined : decodeURIComponent(id);
  if (kind === "rollouts") teardown = rolloutView(decoded);
  else if (kind === "devices") deviceView(decoded);
  else teardown = listView();
}

document.getElementById("lookup").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("lookup-id");
  location.hash = `#/devices/${encodeURIComponent(input.value.trim())}`;
  input.value = "";
});
document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
});
addEventListener("hashchange", route);
route();
