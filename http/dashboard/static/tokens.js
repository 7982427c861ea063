// Tokens (admins only): every API token, a form to create one (its plaintext shown once), revoke.
import { useState } from "preact/hooks";
import { api } from "./api.js";
import { ErrorBanner, html, useApi, useRole, useSession, when } from "./ui.js";

export function TokensPage() {
  const admin = useRole("admin");
  const { me } = useSession();
  const tokens = useApi(admin ? "/v1/tokens" : null);
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  if (!admin) {
    return html`
      <h1>Tokens</h1>
      <p>Managing tokens needs the admin role.</p>
    `;
  }
  async function create(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    setError(null);
    try {
      setCreated(
        await api("POST", "/v1/tokens", { name: data.get("name").trim(), role: data.get("role") }),
      );
      form.reset();
      tokens.reload();
    } catch (failure) {
      setError(failure);
    }
  }
  async function revoke(token) {
    if (!confirm(`Revoke token "${token.name}"? Clients using it are refused at once.`)) return;
    setError(null);
    try {
      await api("DELETE", `/v1/tokens/${token.id}`);
      tokens.reload();
    } catch (failure) {
      setError(failure);
    }
  }
  const items = tokens.data?.items ?? [];
  return html`
    <h1>Tokens</h1>
    <form class="card form" id="new-token" onSubmit=${create}>
          <h2>New token</h2>
          <label for="token-name">Name</label>
          <input id="token-name" name="name" required pattern="[\\w.@\\-]{1,64}" />
          <label for="token-role">Role</label>
          <select id="token-role" name="role">
            <option value="viewer">viewer: reads</option>
            <option value="operator">operator: also devices, artifacts and rollouts</option>
            <option value="admin">admin: also tokens</option>
          </select>
          <div class="actions"><button type="submit" class="primary">Create token</button></div>
          ${created
            ? html`<div class="banner info" role="status" id="created-token">
          <strong>Token "${created.name}"</strong> Copy it now; it is not shown again:${" "}
          <code class="mono">${created.token}</code>
        </div>`
            : null}
        </form>
    <${ErrorBanner} error=${tokens.error ?? error} />
    <table id="tokens">
      <caption class="sr-only">API tokens</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Role</th>
          <th scope="col">Created</th>
          <th scope="col">Last used</th>
          <th scope="col">Revoked</th>
          <th scope="col"><span class="sr-only">Actions</span></th>
        </tr>
      </thead>
      <tbody>
            ${items.map((t) =>
              html`
                <tr data-id=${t.id}>
                  <td>${t.name}${t.id === me.id
                    ? html`
                      ${" "}<span class="muted">(this tab)</span>
                    `
                    : null}</td>
                  <td>${t.role}</td>
                  <td>${when(t.createdAt)}</td>
                  <td>${when(t.lastUsedAt)}</td>
                  <td>${t.revokedAt ? when(t.revokedAt) : ""}</td>
                  <td>${t.revokedAt ? null : html`
                    <button type="button" class="danger" onClick=${() => revoke(t)}
                      aria-label=${`Revoke ${t.name}`}>Revoke</button>
                  `}</td>
                </tr>
              `
            )}
          </tbody>
    </table>
  `;
}
