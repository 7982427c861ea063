// Shared pieces of the console: the html tag, small components and formatting.
// Every value from the API reaches the DOM as text through Preact, never as HTML.
import { createContext, h } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";
import { api } from "./api.js";

export const html = htm.bind(h);

/** Who is signed in and the server's vocabulary: `{ me, states }`. */
export const Session = createContext(null);

export function useSession() {
  return useContext(Session);
}

const RANK = { viewer: 0, operator: 1, admin: 2 };

/** Whether the signed-in token has at least `role`. */
export function useRole(role) {
  const { me } = useSession();
  return RANK[me.role] >= RANK[role];
}

/**
 * Loads `path` from the API when it changes, and again every `pollMs` when given.
 * Returns `{ data, error, reload }`.
 */
export function useApi(path, pollMs) {
  const [state, setState] = useState({ data: null, error: null });
  const current = useRef(path);
  current.current = path;
  const reload = useCallback(async () => {
    if (path === null) return;
    try {
      const data = await api("GET", path);
      if (current.current === path) setState({ data, error: null });
    } catch (error) {
      if (current.current === path) setState((old) => ({ data: old.data, error }));
    }
  }, [path]);
  useEffect(() => {
    setState({ data: null, error: null });
    reload();
    if (!pollMs) return;
    const timer = setInterval(reload, pollMs);
    return () => clearInterval(timer);
  }, [reload, pollMs]);
  return { ...state, reload };
}

/**
 * A paged list from the API: `pathFor(cursor)` builds the path of a page. "Newer" and "Older"
 * walk the pages; a change of `pathFor`'s inputs (`key`) starts again from the first.
 */
export function usePages(pathFor, key, pollMs) {
  const [cursors, setCursors] = useState([null]);
  useEffect(() => setCursors([null]), [key]);
  const cursor = cursors.at(-1);
  const result = useApi(pathFor(cursor), pollMs);
  const next = result.data?.nextCursor ?? null;
  return {
    ...result,
    page: cursors.length,
    older: next === null ? null : () => setCursors([...cursors, next]),
    newer: cursors.length > 1 ? () => setCursors(cursors.slice(0, -1)) : null,
  };
}

/** Previous/next buttons of a paged list. */
export function Pager({ pages, label, olderText = "Next page", newerText = "Previous page" }) {
  if (!pages.older && !pages.newer) return null;
  return html`
    <nav class="pager" aria-label=${`${label} pages`}>
      <button type="button" disabled=${!pages.newer} onClick=${pages.newer}>${newerText}</button>
      <span class="muted">Page ${pages.page}</span>
      <button type="button" disabled=${!pages.older} onClick=${pages.older}>${olderText}</button>
    </nav>
  `;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

/** How long ago, in words: "12 s ago", "3 min ago". */
export function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "unknown";
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function words(state) {
  return state.replaceAll("_", " ");
}

/** A status byte as hex and its SRUP name, from the server's vocabulary. */
export function useStatusText() {
  const { states } = useSession();
  return (status) => {
    if (status === null || status === undefined) return "";
    const hex = `0x${status.toString(16).toUpperCase().padStart(2, "0")}`;
    const known = states.statuses.find((s) => s.code === status);
    return known ? `${hex} ${known.text}` : hex;
  };
}

export function Badge({ state }) {
  return html`<span class=${`badge state-${state}`} data-state=${state}>${words(state)}</span>`;
}

/** An artifact's name and version, or its digest's start when it has none. */
export function ArtifactLabel({ artifact, digest }) {
  if (artifact?.name) {
    return html`<span title=${artifact.digest ?? digest}>${artifact.name} <span class="version">${
      artifact.version ?? ""
    }</span></span>`;
  }
  const text = digest ?? artifact?.digest;
  return text ? html`<span class="mono" title=${text}>${text.slice(0, 16)}…</span>` : "none";
}

/** A bar of activated, failed and in-flight devices out of `total`. */
export function Progress({ counts, total, label, big = false }) {
  const share = (n) => `${total ? (100 * n) / total : 0}%`;
  const active = (counts.initiated ?? 0) + (counts.received ?? 0) + (counts.activating ?? 0) +
    (counts.retrying ?? 0);
  const done = counts.activated ?? 0;
  return html`
    <div
      class=${big ? "bar big" : "bar"}
      role="progressbar"
      aria-label=${label}
      aria-valuemin="0"
      aria-valuemax=${total}
      aria-valuenow=${done}
      aria-valuetext=${`${done} of ${total} activated`}
    >
      <span class="done" style=${{ width: share(done) }}></span>
      <span class="failed" style=${{ width: share(counts.failed ?? 0) }}></span>
      <span class="active" style=${{ width: share(active) }}></span>
    </div>
  `;
}

export function Facts({ pairs, id }) {
  return html`<dl class="facts" id=${id}>
    ${
    pairs.map(([key, value]) =>
      html`
        <dt>${key}</dt>
        <dd>${value}</dd>
      `
    )
  }
  </dl>`;
}

export function ErrorBanner({ error }) {
  if (!error) return null;
  return html`<div class="banner halt" role="alert"><strong>Error</strong>${error.message}</div>`;
}

/** An event as one line: its time, type, device, status and reason, and who did it. */
export function EventLine({ event, rolloutLink = true }) {
  const statusText = useStatusText();
  const data = event.data ?? {};
  const actor = event.actor ?? data.actor;
  return html`<li>
    <time datetime=${event.at}>${new Date(event.at).toLocaleString()}</time>
    <span class="type">${event.type}</span>
    ${
    event.deviceId
      ? html`<a class="mono" href=${`#/devices/${event.deviceId}`}>${event.deviceId}</a>`
      : null
  }
    ${
    event.rolloutId && rolloutLink
      ? html`<a class="mono" href=${`#/rollouts/${event.rolloutId}`}>rollout ${event.rolloutId}</a>`
      : null
  }
    ${
    typeof data.status === "number"
      ? html`<span class="status">${statusText(data.status)}</span>`
      : null
  }
    ${
    typeof data.reason === "string" ? html`<span class="muted">${words(data.reason)}</span>` : null
  }
    ${actor ? html`<span class="muted">by ${actor}</span>` : null}
  </li>`;
}
