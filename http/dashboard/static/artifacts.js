// Artifacts: every artifact with its name, version, size, digest and the rollouts that use it;
// operators upload new ones with a name and version.
import { useState } from "preact/hooks";
import { api, query } from "./api.js";
import { Badge, bytes, ErrorBanner, html, Pager, usePages, useRole, when } from "./ui.js";

function Upload({ onUploaded }) {
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const file = data.get("file");
    setError(null);
    setDone(null);
    setBusy(true);
    try {
      const artifact = await api(
        "POST",
        `/v1/artifacts${
          query({
            name: data.get("name").trim(),
            version: data.get("version").trim(),
            releaseNotes: data.get("releaseNotes").trim(),
          })
        }`,
        file,
      );
      setDone(artifact);
      form.reset();
      onUploaded();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <form class="card form" id="upload" onSubmit=${submit}>
      <h2>Upload an artifact</h2>
      <label for="artifact-file">File</label>
      <input id="artifact-file" name="file" type="file" required />
      <label for="artifact-name">Name</label>
      <input id="artifact-name" name="name" required maxlength="128" placeholder="sensor-firmware" />
      <label for="artifact-version">Version</label>
      <input id="artifact-version" name="version" required maxlength="64" placeholder="2.1.0" />
      <label for="artifact-notes">Release notes</label>
      <textarea id="artifact-notes" name="releaseNotes" rows="3" maxlength="4000"></textarea>
      <div class="actions">
          <button type="submit" class="primary" disabled=${busy}>Upload</button>
          ${done
            ? html`
              <span role="status"
                id="uploaded">Uploaded ${done.name} ${done.version}: <span class="mono">${done
                  .digest}</span></span>
            `
            : null}
        </div>
      <${ErrorBanner} error=${error} />
    </form>
  `;
}

export function ArtifactsPage() {
  const operator = useRole("operator");
  const pages = usePages((cursor) => `/v1/artifacts${query({ cursor, limit: 100 })}`, "");
  // The API pages by digest; within a page the newest come first.
  const items = [...(pages.data?.items ?? [])].sort((a, b) =>
    b.createdAt.localeCompare(a.createdAt)
  );
  return html`
    <h1>Artifacts</h1>
        ${operator ? html`<${Upload} onUploaded=${pages.reload} />` : null}
        <${ErrorBanner} error=${pages.error} />
        ${pages.data && items.length === 0 ? html`<p class="muted">No artifacts yet.</p>` : null}
        <table id="artifacts">
      <caption class="sr-only">Artifacts</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Version</th>
          <th scope="col">Size</th>
          <th scope="col">Digest (SHA-256)</th>
          <th scope="col">Created</th>
          <th scope="col">Used by</th>
        </tr>
      </thead>
      <tbody>
            ${items.map((a) =>
              html`
                <tr data-digest=${a.digest}>
                  <td>
                            ${a.name ?? html`<span class="muted">unnamed</span>`}
                            ${a.releaseNotes
                              ? html`
                                <details>
                                  <summary>Release notes</summary>
                                  <p class="notes">${a.releaseNotes}</p>
                                </details>
                              `
                              : null}
                          </td>
                  <td>${a.version ?? ""}</td>
                  <td>${bytes(a.size)}</td>
                  <td class="mono digest">${a.digest}</td>
                  <td>${when(a.createdAt)}</td>
                  <td>${a.usedBy?.length
                    ? html`<ul class="uses">${
                      a.usedBy.map((r) =>
                        html`<li><a href=${`#/rollouts/${r.id}`}>${
                          r.name ?? r.id
                        }</a> <${Badge} state=${r.state} /></li>`
                      )
                    }</ul>`
                    : html`<span class="muted">no rollout</span>`}</td>
                </tr>
              `
            )}
          </tbody>
    </table>
        <${Pager} pages=${pages} label="Artifacts" />
  `;
}
