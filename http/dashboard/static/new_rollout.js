// New rollout: pick an artifact, a policy (stages, YAML and commit shown) and targets, see how
// many devices match and each stage's size (POST /v1/rollouts/preview), then create it.
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.js";
import { ErrorBanner, Facts, html, useApi, useRole } from "./ui.js";

// The preview is asked once typing pauses this long.
const PREVIEW_DELAY_MS = 250;

/** `key=value` pairs separated by commas or new lines. */
function parseTags(text) {
  const tags = {};
  for (const pair of text.split(/[,\n]/).map((p) => p.trim()).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at < 1) throw new Error(`Tag "${pair}" is not key=value`);
    tags[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  if (Object.keys(tags).length === 0) throw new Error("Give at least one tag as key=value");
  return tags;
}

function parseIds(text) {
  const ids = text.split(/[\s,]+/).filter(Boolean);
  if (ids.length === 0) throw new Error("Give at least one device id");
  return ids;
}

function targetsOf(form) {
  if (form.mode === "all") return { all: true };
  if (form.mode === "tags") return { tags: parseTags(form.tags) };
  return { ids: parseIds(form.ids) };
}

function Preview({ policy, targets }) {
  const [preview, setPreview] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setError(null);
    if (!policy || !targets.value) {
      setPreview(null);
      if (targets.error) setError(targets.error);
      return;
    }
    let current = true;
    const timer = setTimeout(async () => {
      try {
        const answer = await api("POST", "/v1/rollouts/preview", {
          policy,
          targets: targets.value,
        });
        if (current) setPreview(answer);
      } catch (failure) {
        if (current) {
          setPreview(null);
          setError(failure);
        }
      }
    }, PREVIEW_DELAY_MS);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [policy, JSON.stringify(targets.value ?? null), targets.error?.message]);
  return html`<div class="card preview" id="preview" aria-live="polite">
    <h2>Preview</h2>
    ${error ? html`<p class="error">${error.message}</p>` : null}
    ${
    preview
      ? html`
        <p><strong id="preview-count">${preview.devices}</strong> ${preview.devices === 1
          ? "device matches"
          : "devices match"}.</p>
        <ol class="stages" id="preview-stages">
                  ${preview.stages.map((s, i) =>
                    html`<li>Stage ${i + 1}: ${s.percent}% · <span class="n">${s.devices}</span> ${
                      s.devices === 1 ? "device" : "devices"
                    }</li>`
                  )}
                </ol>
      `
      : error
      ? null
      : html`<p class="muted">Choose a policy and targets.</p>`
  }
  </div>`;
}

/** The artifact choice that makes the rollout a rollback. */
const ROLLBACK = "rollback";

export function NewRolloutPage() {
  const operator = useRole("operator");
  const artifacts = useApi("/v1/artifacts?limit=1000");
  const policies = useApi("/v1/policies");
  const [form, setForm] = useState({
    name: "",
    description: "",
    artifact: "",
    policy: "",
    mode: "all",
    tags: "",
    ids: "",
    startAt: "",
  });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (key) => (event) => setForm({ ...form, [key]: event.currentTarget.value });
  if (!operator) {
    return html`
      <h1>New rollout</h1>
      <p>Creating rollouts needs the operator role.</p>
    `;
  }
  const artifactItems = [...(artifacts.data?.items ?? [])].sort((a, b) =>
    b.createdAt.localeCompare(a.createdAt)
  );
  const policyItems = policies.data?.items ?? [];
  const chosen = policyItems.find((p) => p.name === form.policy);
  let targets;
  try {
    targets = { value: targetsOf(form) };
  } catch (failure) {
    targets = { error: failure };
  }

  async function submit(event) {
    event.preventDefault();
    setError(null);
    if (targets.error) return setError(targets.error);
    // The browser's local time, sent with its offset as UTC; empty starts the rollout now.
    const startAt = form.startAt ? new Date(form.startAt) : null;
    if (startAt && Number.isNaN(startAt.getTime())) {
      return setError(new Error(`Invalid start time "${form.startAt}"`));
    }
    setBusy(true);
    try {
      const created = await api("POST", "/v1/rollouts", {
        // A rollback names no artifact: each device goes back to its own previous version.
        ...(form.artifact === ROLLBACK
          ? { action: "rollback" }
          : { artifact: { digest: form.artifact } }),
        policy: form.policy,
        targets: targets.value,
        ...(form.name.trim() ? { name: form.name.trim() } : {}),
        ...(form.description.trim() ? { description: form.description.trim() } : {}),
        ...(startAt ? { startAt: startAt.toISOString() } : {}),
      });
      location.hash = `#/rollouts/${created.id}`;
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <p><a href="#/rollouts">← Rollouts</a></p>
    <h1>New rollout</h1>
    <${ErrorBanner} error=${artifacts.error ?? policies.error} />
    <form class="card form" id="new-rollout" onSubmit=${submit}>
          <label for="rollout-name">Name</label>
          <input id="rollout-name" value=${form.name} onInput=${set("name")} maxlength="128"
            placeholder="e.g. Firmware 2.1 to the lab" />
          <label for="rollout-description">Description</label>
          <textarea id="rollout-description" rows="2" value=${form.description}
            onInput=${set("description")} maxlength="2000"></textarea>

          <label for="rollout-artifact">Artifact</label>
          <select id="rollout-artifact" required value=${form.artifact} onChange=${set("artifact")}>
            <option value="">Choose an artifact</option>
            <option value=${ROLLBACK}>Roll back: each device's previous version</option>
            ${artifactItems.map((a) =>
              html`<option value=${a.digest}>${a.name ?? "unnamed"} ${a.version ?? ""} (${
                a.digest.slice(0, 12)
              }…)</option>`
            )}
          </select>

          <label for="rollout-policy">Policy</label>
          <select id="rollout-policy" required value=${form.policy} onChange=${set("policy")}>
            <option value="">Choose a policy</option>
            ${policyItems.map((p) => html`<option value=${p.name}>${p.name}</option>`)}
          </select>
          ${chosen
            ? html`
              <div class="policy-preview" id="policy-preview">
                ${chosen.policy.description ? html`<p>${chosen.policy.description}</p>` : null}
                <${Facts} pairs=${[
                  ["stages", chosen.policy.stages.map((s) => `${s.percent}%`).join(" → ")],
                  ["file", html`<span class="mono">${chosen.source}</span>`],
                  ["sha256", html`<span class="mono">${chosen.sha256}</span>`],
                  [
                    "commit",
                    chosen.commit
                      ? html`<span class="mono">${chosen.commit}</span>${
                        chosen.dirty ? " (file modified since)" : ""
                      }`
                      : "none (not in git)",
                  ],
                ]} />
                <pre class="yaml" tabindex="0" aria-label=${`YAML of policy ${chosen.name}`}>${chosen
                  .yaml}</pre>
              </div>
            `
            : null}

          <fieldset>
            <legend>Targets</legend>
            ${[["all", "All devices"], ["tags", "Devices with tags"], ["ids", "Device ids"]].map((
              [mode, text],
            ) =>
              html`<label class="inline">
            <input type="radio" name="mode" value=${mode} checked=${form.mode === mode}
              onChange=${set("mode")} /> ${text}
          </label>`
            )}
            ${form.mode === "tags"
              ? html`
                <label for="rollout-tags">Tags (key=value, comma separated)</label>
                <input id="rollout-tags" value=${form.tags} onInput=${set("tags")}
                  placeholder="site=lab, ring=canary" />
              `
              : null}
            ${form.mode === "ids"
              ? html`
                <label for="rollout-ids">Device ids (one per line)</label>
                <textarea id="rollout-ids" rows="4" value=${form.ids} onInput=${set(
                  "ids",
                )}></textarea>
              `
              : null}
          </fieldset>

          <label for="rollout-start-at">Start at (optional, your local time; empty starts now)</label>
          <input id="rollout-start-at" type="datetime-local" value=${form.startAt}
            onInput=${set("startAt")} />

          <${Preview} policy=${form.policy || null} targets=${targets} />
          <${ErrorBanner} error=${error} />
          <div class="actions">
            <button type="submit" class="primary" disabled=${busy}>Create rollout</button>
            <a href="#/rollouts">Cancel</a>
          </div>
        </form>
  `;
}
