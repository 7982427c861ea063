// Rollouts: every rollout with its name, artifact, policy, state, progress and creator.
import { useState } from "preact/hooks";
import { query } from "./api.js";
import {
  ArtifactLabel,
  Badge,
  ErrorBanner,
  html,
  Pager,
  Progress,
  usePages,
  useRole,
  useSession,
  when,
  words,
} from "./ui.js";

const POLL_MS = 3000;

export function RolloutsPage() {
  const { states } = useSession();
  const operator = useRole("operator");
  const [state, setState] = useState("");
  const pages = usePages(
    (cursor) => `/v1/rollouts${query({ state, cursor, limit: 50 })}`,
    state,
    POLL_MS,
  );
  const items = pages.data?.items;
  return html`
    <h1>Rollouts</h1>
        <div class="toolbar">
          ${operator ? html`<a class="button primary" href="#/rollouts/new">New rollout</a>` : null}
          <label>State
            <select value=${state} onChange=${(e) => setState(e.currentTarget.value)}>
              <option value="">any</option>
              ${states.rolloutStates.map((s) => html`<option value=${s}>${words(s)}</option>`)}
            </select>
          </label>
        </div>
        <${ErrorBanner} error=${pages.error} />
        ${items && items.length === 0
          ? html`<p class="muted">No rollouts${state ? " in this state" : " yet"}.</p>`
          : null}
        <table id="rollouts">
      <caption class="sr-only">Rollouts, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Rollout</th>
          <th scope="col">Artifact</th>
          <th scope="col">Policy</th>
          <th scope="col">State</th>
          <th scope="col">Progress</th>
          <th scope="col">Created by</th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
            ${(items ?? []).map((r) => {
              const label = r.name ?? "Unnamed rollout";
              return html`
                <tr data-id=${r.id}>
                  <td>
                    <a href=${`#/rollouts/${r.id}`}>${label}</a>
                    <div class="mono small">${r.id}</div>
                    ${r.description
                      ? html`<div class="description small">${r.description}</div>`
                      : null}
                  </td>
                  <td>
                    ${r.action === "rollback"
                      ? html`<span class="rollback" title="Each device goes back to its previous version">rollback</span>`
                      : r.action === "rotate-key"
                      ? html`<span class="rollback" title=${`Each device trusts server key ${r.serverKey}`}>key rotation</span>`
                      : html`<${ArtifactLabel} artifact=${r.artifact} />`}
                  </td>
                  <td>${r.policy.name}</td>
                  <td>
                    <${Badge} state=${r.state} />
                    ${r.state === "scheduled"
                      ? html`<div class="small muted">starts ${when(r.startAt)}</div>`
                      : null}
                  </td>
                  <td>
                    <${Progress} counts=${r.counts} total=${r
                      .devices} label=${`Progress of ${label}`} />
                    <span class="muted">${r.counts.activated ?? 0} / ${r.devices}</span>
                  </td>
                  <td>${r.createdBy ?? "unknown"}</td>
                  <td>${when(r.createdAt)}</td>
                </tr>
              `;
            })}
          </tbody>
    </table>
        <${Pager} pages=${pages} label="Rollouts" />
  `;
}
