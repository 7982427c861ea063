// Policies: each loaded policy with its stages, YAML and provenance, and files that failed.
import { useState } from "preact/hooks";
import { api } from "./api.js";
import { ErrorBanner, Facts, html, useApi, useRole } from "./ui.js";

export function PoliciesPage() {
  const operator = useRole("operator");
  const policies = useApi("/v1/policies");
  const [error, setError] = useState(null);
  async function reload() {
    setError(null);
    try {
      await api("POST", "/v1/policies/reload");
      policies.reload();
    } catch (failure) {
      setError(failure);
    }
  }
  const data = policies.data;
  return html`<h1>Policies</h1>
    ${
    operator
      ? html`
        <div
          class="toolbar"><button type="button" id="reload-policies" onClick=${reload}>Reload policy files</button></div>
      `
      : null
  }
    <${ErrorBanner} error=${policies.error ?? error} />
    ${data && data.items.length === 0 ? html`<p class="muted">No policy is loaded.</p>` : null}
    ${
    (data?.items ?? []).map((p) =>
      html`<section class="card policy" data-policy=${p.name} aria-labelledby=${`policy-${p.name}`}>
        <h2 id=${`policy-${p.name}`}>${p.name}</h2>
        ${p.policy.description ? html`<p>${p.policy.description}</p>` : null}
        <${Facts} pairs=${[
        ["stages", p.policy.stages.map((s) => `${s.percent}%`).join(" → ")],
        ["file", html`<span class="mono">${p.source}</span>`],
        ["sha256", html`<span class="mono">${p.sha256}</span>`],
        [
          "commit",
          p.commit
            ? html`<span class="mono">${p.commit}</span>${p.dirty ? " (file modified since)" : ""}`
            : "none (not in git)",
        ],
      ]} />
        <details open>
          <summary>YAML</summary>
          <pre class="yaml" tabindex="0" aria-label=${`YAML of policy ${p.name}`}>${p.yaml}</pre>
        </details>
      </section>`
    )
  }
    ${
    data?.failures.length
      ? html`
        <h2>Files that failed to load</h2>
        <ul class="failures">
                  ${data.failures.map((f) =>
                    f.issues.map((i) =>
                      html`<li><span class="mono">${f.source}${i.line ? `:${i.line}` : ""}</span> ${
                        i.path ? `${i.path}: ` : ""
                      }${i.message}</li>`
                    )
                  )}
                </ul>
      `
      : null
  }`;
}
