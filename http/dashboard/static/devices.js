// Devices: the inventory with search and filters, and one device with its whole history.
import { useState } from "preact/hooks";
import { api, query } from "./api.js";
import {
  ago,
  ArtifactLabel,
  Badge,
  ErrorBanner,
  EventLine,
  Facts,
  html,
  Pager,
  useApi,
  usePages,
  useRole,
  useSession,
  useStatusText,
  when,
  words,
} from "./ui.js";

const POLL_MS = 5000;
const HOUR = 3600_000;

/** "Last seen" choices: each sets seenAfter or seenBefore relative to now. */
const SEEN = {
  "": { text: "any time" },
  "5m": { text: "within 5 minutes", after: 5 * 60_000 },
  "1h": { text: "within an hour", after: HOUR },
  "24h": { text: "within a day", after: 24 * HOUR },
  "stale": { text: "not within a day", before: 24 * HOUR },
};

/** The times of a "last seen" choice made at `now` (fixed, so the query stays the same). */
function seenParams(choice, now) {
  const seen = SEEN[choice];
  return {
    seenAfter: seen?.after ? new Date(now - seen.after).toISOString() : undefined,
    seenBefore: seen?.before ? new Date(now - seen.before).toISOString() : undefined,
  };
}

/** Online, offline, or unknown (an external broker says nothing about connections). */
function Presence({ online }) {
  if (online === null || online === undefined) return html`<span class="muted">unknown</span>`;
  return html`<span class=${online ? "online" : "offline"}>${online ? "online" : "offline"}</span>`;
}

function Tags({ tags }) {
  const entries = Object.entries(tags);
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return entries.map(([k, v]) =>
    html`
      <span class="tag">${k}=${v}</span>
    `
  );
}

/** [SRUP-11] The device's key changes, oldest first, as GET /v1/devices/{id} gives them. */
function KeyRotations({ rotations }) {
  if (!rotations || rotations.length === 0) return html`<span class="muted">none</span>`;
  return html`
    <ol id="key-rotations">
      ${rotations.map((r) =>
        html`
          <li>
            ${when(r.at)}: <span class="mono">${r.oldFingerprint}</span> →
            <span class="mono">${r.newFingerprint}</span>
            <span class="muted">(sequence ${r.sequence})</span>
          </li>
        `
      )}
    </ol>
  `;
}

/** A digest's artifact name and version, from the artifacts the page loaded. */
function useArtifactNames() {
  const artifacts = useApi("/v1/artifacts?limit=1000");
  const items = artifacts.data?.items ?? [];
  return { items, byDigest: new Map(items.map((a) => [a.digest, a])) };
}

/** [SRUP-10] A server key by its fingerprint and role (null: never rotated, the current key). */
function ServerKey({ fingerprint, server }) {
  const fp = fingerprint ?? server?.currentKey.fingerprint;
  if (!fp) return html`<span class="muted">…</span>`;
  const role = server?.keys.find((k) => k.fingerprint === fp)?.role ?? "unknown";
  return html`
    <span class="mono" title=${fp}>${fp.slice(0, 8)}</span> <span
      class=${role === "unknown" ? "error" : "muted"}>${role}</span>
  `;
}

/** [SRUP-10] The server's keys, the devices on each, and the key rotation under way. */
function ServerKeys({ server }) {
  if (!server) return null;
  return html`<p id="server-keys" class="small">
    Server key: current <span class="mono">${server.currentKey.fingerprint}</span>${
    server.nextKey ? html`, next <span class="mono">${server.nextKey.fingerprint}</span>` : null
  }. Devices per key: ${
    server.keys.map((k, i) =>
      html`${i ? ", " : ""}<span class="mono">${
        k.fingerprint.slice(0, 8)
      }</span> ${k.role} ${k.devices}`
    )
  }${
    server.rotation
      ? html`; rotation <a href=${`#/rollouts/${server.rotation.rollout}`}>${server.rotation.state}</a>`
      : null
  }.
  </p>`;
}

export function DevicesPage() {
  const { states } = useSession();
  const artifacts = useArtifactNames();
  const server = useApi("/v1/server", POLL_MS).data;
  const [filters, setFilters] = useState({
    q: "",
    tag: "",
    state: "",
    artifact: "",
    online: "",
    seen: "",
    seenChosenAt: 0,
  });
  const set = (key) => (event) => setFilters({ ...filters, [key]: event.currentTarget.value });
  const tags = filters.tag.split(",").map((t) => t.trim()).filter(Boolean);
  const params = {
    q: /^[0-9a-fA-F-]{1,36}$/.test(filters.q.trim()) ? filters.q.trim() : undefined,
    tag: tags,
    state: filters.state,
    artifact: filters.artifact,
    online: filters.online,
    ...seenParams(filters.seen, filters.seenChosenAt),
  };
  const key = JSON.stringify(filters);
  const pages = usePages(
    (cursor) => `/v1/devices${query({ ...params, cursor, limit: 50 })}`,
    key,
    POLL_MS,
  );
  const items = pages.data?.items;
  const badSearch = filters.q.trim() !== "" && params.q === undefined;
  return html`
    <h1>Devices</h1>
        <form class="filters" id="device-filters" role="search" onSubmit=${(e) =>
          e.preventDefault()}>
      <label>Search by id
            <input id="device-search" type="search" value=${filters.q} onInput=${set("q")}
              placeholder="start of an id" aria-invalid=${badSearch} />
          </label>
      <label>Tag
            <input id="device-tag" value=${filters.tag} onInput=${set(
              "tag",
            )} placeholder="site=lab" />
          </label>
      <label>State
            <select id="device-state" value=${filters.state} onChange=${set("state")}>
              <option value="">any</option>
              ${states.deviceStates.map((s) => html`<option value=${s}>${words(s)}</option>`)}
            </select>
          </label>
      <label>Artifact
            <select id="device-artifact" value=${filters.artifact} onChange=${set("artifact")}>
              <option value="">any</option>
              ${artifacts.items.map((a) =>
                html`<option value=${a.digest}>${a.name ?? a.digest.slice(0, 12)} ${
                  a.version ?? ""
                }</option>`
              )}
            </select>
          </label>
      <label>Connection
            <select id="device-online" value=${filters.online} onChange=${set("online")}>
              <option value="">any</option>
              <option value="true">online</option>
              <option value="false">offline</option>
            </select>
          </label>
      <label>Last seen
            <select id="device-seen" value=${filters.seen} onChange=${(e) =>
              setFilters({ ...filters, seen: e.currentTarget.value, seenChosenAt: Date.now() })}>
              ${Object.entries(SEEN).map(([value, s]) =>
                html`<option value=${value}>${s.text}</option>`
              )}
            </select>
          </label>
    </form>
        ${badSearch
          ? html`<p class="error" role="alert">Search takes the start of a device id (hex digits and dashes).</p>`
          : null}
        <${ErrorBanner} error=${pages.error} />
        <${ServerKeys} server=${server} />
        <table id="devices">
      <caption class="sr-only">Devices matching the filters</caption>
      <thead>
        <tr>
          <th scope="col">Device</th>
          <th scope="col">Tags</th>
          <th scope="col">Artifact</th>
          <th scope="col">Latest rollout</th>
          <th scope="col">Connection</th>
          <th scope="col">Last seen</th>
          <th scope="col">Server key</th>
        </tr>
      </thead>
      <tbody>
            ${(items ?? []).map((d) =>
              html`
                <tr data-id=${d.id}>
                  <td><a class="mono" href=${`#/devices/${d.id}`}>${d.id}</a></td>
                  <td>
                    <${Tags} tags=${d.tags} />
                  </td>
                  <td>${d.currentDigest
                    ? html`
                      <${ArtifactLabel} artifact=${artifacts.byDigest.get(d.currentDigest)}
                        digest=${d.currentDigest} />
                    `
                    : html`<span class="muted">none</span>`}</td>
                  <td>${d.rollout
                    ? html`<a href=${`#/rollouts/${d.rollout.id}`}><${Badge} state=${d.rollout.state} /></a>`
                    : html`<span class="muted">none</span>`}</td>
                  <td>
                    <${Presence} online=${d.online} />
                  </td>
                  <td title=${when(d.lastSeenAt)}>${ago(d.lastSeenAt)}</td>
                  <td>
                    <${ServerKey} fingerprint=${d.serverKey} server=${server} />
                  </td>
                </tr>
              `
            )}
          </tbody>
    </table>
        ${items && items.length === 0 ? html`<p class="muted">No device matches.</p>` : null}
        <${Pager} pages=${pages} label="Devices" />
  `;
}

function ArtifactFact({ digest, byDigest, id }) {
  if (!digest) return html`<span id=${id}>none</span>`;
  const artifact = byDigest.get(digest);
  return html`${
    artifact?.name ? html`<span>${artifact.name} ${artifact.version ?? ""} </span>` : null
  }
    <span class="mono" id=${id}>${digest}</span>`;
}

function History({ id, byDigest }) {
  const statusText = useStatusText();
  const pages = usePages(
    (cursor) => `/v1/devices/${id}/rollouts${query({ cursor, limit: 25 })}`,
    id,
  );
  const items = pages.data?.items;
  return html`<section aria-labelledby="history-heading">
    <h2 id="history-heading">Rollouts</h2>
    <${ErrorBanner} error=${pages.error} />
    ${
    items && items.length === 0
      ? html`<p class="muted">This device was in no rollout yet.</p>`
      : html`
        <table id="history">
          <caption class="sr-only">Every rollout this device was in, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Rollout</th>
              <th scope="col">Rollout state</th>
              <th scope="col">Device state</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last status</th>
              <th scope="col">Artifact</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
                  ${(items ?? []).map((item) =>
                    html`
                      <tr>
                        <td>
                          <a href=${`#/rollouts/${item.rolloutId}`}>${item.rolloutName ??
                            "Unnamed rollout"}</a>
                          <div class="mono small">${item.rolloutId}</div>
                        </td>
                        <td>
                          <${Badge} state=${item.rolloutState} />
                        </td>
                        <td>
                          <${Badge} state=${item.state} />
                        </td>
                        <td>${item.attempt}</td>
                        <td>${statusText(item.lastStatus)}</td>
                        <td>
                          ${item.rolloutAction === "rotate-key" ? "server key rotation" : html`
                            ${item.rolloutAction === "rollback" ? "rollback to " : null}
                                                          <${ArtifactLabel} artifact=${byDigest.get(
                                                            item.artifactDigest,
                                                          )}
                              digest=${item.artifactDigest} />
                          `}
                        </td>
                        <td>${when(item.updatedAt)}</td>
                      </tr>
                    `
                  )}
                </tbody>
        </table>
      `
  }
    <${Pager} pages=${pages} label="Rollouts" />
  </section>`;
}

function DeviceEvents({ id }) {
  const pages = usePages(
    (before) => `/v1/devices/${id}/events${query({ before, limit: 50 })}`,
    id,
  );
  const items = pages.data?.items;
  return html`<section aria-labelledby="device-events-heading">
    <h2 id="device-events-heading">Events</h2>
    <${ErrorBanner} error=${pages.error} />
    <ol class="events" id="device-events">
      ${(items ?? []).map((event) => html`<${EventLine} key=${event.id} event=${event} />`)}
    </ol>
    ${items && items.length === 0 ? html`<p class="muted">No events for this device.</p>` : null}
    <${Pager} pages=${pages} label="Events" newerText="Newer events" olderText="Older events" />
  </section>`;
}

/** Clears the sequence floor of a device locked out by its own sequence id (operators). */
function SequenceReset({ device, onDone }) {
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState("");
  async function reset() {
    if (
      !confirm(
        `Reset the sequence floor of this device (now ${device.lastSequence})? Its next RESPONSE is accepted whatever its sequence id. The reset is recorded in its events.`,
      )
    ) return;
    setMessage("");
    setBusy(true);
    try {
      await api("POST", `/v1/devices/${device.id}/sequence-reset`, {});
      onDone();
    } catch (error) {
      setMessage(`Reset sequence: ${error.message}`);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <span class="actions">
      <button type="button" id="reset-sequence" disabled=${busy || device.lastSequence === null}
        onClick=${reset}>Reset sequence</button>
      <span class="error" id="reset-sequence-error" role="alert">${message}</span>
    </span>
  `;
}

export function DevicePage({ id }) {
  const device = useApi(`/v1/devices/${encodeURIComponent(id)}`, POLL_MS);
  const server = useApi("/v1/server").data;
  const artifacts = useArtifactNames();
  const operator = useRole("operator");
  const d = device.data;
  if (!d) {
    return html`<p><a href="#/devices">← Devices</a></p>
      <h1>Device <span class="mono">${id}</span></h1>
      <${ErrorBanner} error=${device.error} />
      ${device.error ? null : html`<p class="muted">Loading…</p>`}`;
  }
  return html`
    <p><a href="#/devices">← Devices</a></p>
    <h1>Device <span class="mono">${d.id}</span></h1>
    <div class="card" id="device">
      <${Facts} pairs=${[
        [
          "current artifact",
          html`
            <${ArtifactFact} digest=${d.currentDigest} byDigest=${artifacts.byDigest}
              id="current-digest" />
          `,
        ],
        [
          "previous artifact",
          html`
            <${ArtifactFact} digest=${d.previousDigest} byDigest=${artifacts.byDigest}
              id="previous-digest" />
          `,
        ],
        ["connection", html`<${Presence} online=${d.online} />`],
        ["last seen", `${when(d.lastSeenAt)} (${ago(d.lastSeenAt)})`],
        ["tags", html`<${Tags} tags=${d.tags} />`],
        [
          "last sequence id",
          html`<span class="mono" id="last-sequence">${d.lastSequence ?? "none"}</span>
            ${operator ? html`<${SequenceReset} device=${d} onDone=${device.reload} />` : null}`,
        ],
        ["registered", when(d.createdAt)],
        ["public key", html`<span class="mono">${d.publicKey}</span>`],
        [
          "server key",
          html`<span id="server-key"><${ServerKey} fingerprint=${d.serverKey} server=${server} /></span>`,
        ],
        [
          "device key fingerprint",
          html`<span class="mono" id="key-fingerprint">${d.keyFingerprint}</span>`,
        ],
        ["device key rotations", html`<${KeyRotations} rotations=${d.keyRotations} />`],
      ]} />
    </div>
    <${History} id=${d.id} byDigest=${artifacts.byDigest} />
    <${DeviceEvents} id=${d.id} />
  `;
}
