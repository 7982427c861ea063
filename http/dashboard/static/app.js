// flotilla operator console: devices, artifacts, rollouts, policies and tokens over the /v1 API.
// The token is asked once and kept in this tab's sessionStorage only (see api.js).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, onRefused, setToken, token } from "./api.js";
import { html, Session } from "./ui.js";
import { RolloutsPage } from "./rollouts.js";
import { RolloutPage } from "./rollout.js";
import { NewRolloutPage } from "./new_rollout.js";
import { DevicePage, DevicesPage } from "./devices.js";
import { ArtifactsPage } from "./artifacts.js";
import { PoliciesPage } from "./policies.js";
import { TokensPage } from "./tokens.js";

const PAGES = [
  { href: "#/devices", name: "Devices" },
  { href: "#/artifacts", name: "Artifacts" },
  { href: "#/rollouts", name: "Rollouts" },
  { href: "#/policies", name: "Policies" },
  { href: "#/tokens", name: "Tokens", role: "admin" },
];

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

/** The page for a location hash, and the nav link it belongs to. */
function route(hash) {
  const path = hash.replace(/^#/, "") || "/";
  const [, kind, id] = path.match(/^\/([a-z]+)(?:\/([^/]+))?$/) ?? [];
  const decoded = id === undefined ? undefined : decodeURIComponent(id);
  switch (kind) {
    case "devices":
      return decoded
        ? { nav: "#/devices", page: html`<${DevicePage} key=${decoded} id=${decoded} />` }
        : { nav: "#/devices", page: html`<${DevicesPage} />` };
    case "artifacts":
      return { nav: "#/artifacts", page: html`<${ArtifactsPage} />` };
    case "policies":
      return { nav: "#/policies", page: html`<${PoliciesPage} />` };
    case "tokens":
      return { nav: "#/tokens", page: html`<${TokensPage} />` };
    case "rollouts":
      if (decoded === "new") return { nav: "#/rollouts", page: html`<${NewRolloutPage} />` };
      if (decoded) {
        return { nav: "#/rollouts", page: html`<${RolloutPage} key=${decoded} id=${decoded} />` };
      }
      return { nav: "#/rollouts", page: html`<${RolloutsPage} />` };
    default:
      return { nav: "#/rollouts", page: html`<${RolloutsPage} />` };
  }
}

function Login({ onSignedIn }) {
  const [message, setMessage] = useState("");
  async function submit(event) {
    event.preventDefault();
    const value = new FormData(event.currentTarget).get("token").trim();
    setToken(value);
    try {
      await onSignedIn();
    } catch (error) {
      setToken(null);
      setMessage(error.message);
    }
  }
  return html`
    <main id="view">
      <form class="card login" onSubmit=${submit} autocomplete="off">
        <h1>Sign in</h1>
        <p class="muted">Enter an API token. It is kept in this tab's session storage only.</p>
        <label for="token">API token</label>
        <input type="password" id="token" name="token" required autofocus />
        <button type="submit" class="primary">Continue</button>
        <p class="error" role="alert">${message}</p>
      </form>
    </main>
  `;
}

function Lookup() {
  function submit(event) {
    event.preventDefault();
    const input = event.currentTarget.elements.id;
    location.hash = `#/devices/${encodeURIComponent(input.value.trim())}`;
    input.value = "";
  }
  return html`
    <form id="lookup" class="lookup" role="search" autocomplete="off" onSubmit=${submit}>
      <label class="sr-only" for="lookup-id">Device id</label>
      <input id="lookup-id" name="id" placeholder="Device id" required />
      <button type="submit">Look up</button>
    </form>
  `;
}

function Shell({ session, onSignOut }) {
  const hash = useHash();
  const { nav, page } = route(hash);
  const admin = session.me.role === "admin";
  return html`
    <${Session.Provider} value=${session}>
      <header>
        <a class="brand" href="#/">flotilla</a>
        <nav aria-label="Main">
            ${PAGES.filter((p) => !p.role || admin).map((p) =>
              html`<a href=${p.href} aria-current=${
                p.href === nav ? "page" : undefined
              }>${p.name}</a>`
            )}
          </nav>
        <${Lookup} />
        <span class="who">${session.me.name} (${session.me.role})</span>
        <button id="sign-out" type="button" onClick=${onSignOut}>Forget token</button>
      </header>
      <main id="view">${page}</main>
      <//>
  `;
}

function App() {
  const [session, setSession] = useState(null);
  const [checked, setChecked] = useState(false);
  async function signIn() {
    // The state words come from the server (the same as GET /v1/states): no copy here.
    const [me, states] = await Promise.all([
      api("GET", "/v1/me"),
      fetch("/ui/vocabulary.json").then((response) => response.json()),
    ]);
    setSession({ me, states });
  }
  function signOut() {
    setToken(null);
    setSession(null);
  }
  useEffect(() => {
    const stop = onRefused(signOut);
    if (token()) signIn().catch(signOut).finally(() => setChecked(true));
    else setChecked(true);
    return stop;
  }, []);
  if (!checked) {
    return html`
      <main id="view">
        <p class="muted">Loading…</p>
      </main>
    `;
  }
  if (!session) return html`<${Login} onSignedIn=${signIn} />`;
  return html`<${Shell} session=${session} onSignOut=${signOut} />`;
}

render(html`<${App} />`, document.getElementById("root"));
