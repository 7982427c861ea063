/** Headless Chromium for the console tests: launch, sign in, axe-core, screenshots. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
/** Screenshots of each page, kept as test artifacts (gitignored). */
export const OUT_DIR = new URL("../out/console/", import.meta.url).pathname;
/** Small enough for docs/console/, big enough to show a page's top. */
export const VIEWPORT = { width: 1200, height: 800 };

export const installed = existsSync(CHROMIUM);

// axe-core from the npm package pinned in deno.json, injected into each page under test.
const AXE_SOURCE = await Deno.readTextFile(new URL(import.meta.resolve("axe-core")));

export async function launch(): Promise<Browser> {
  if (!installed) {
    throw new Error(
      `Chromium not found at "${CHROMIUM}": install Debian's chromium (.ci/run does)`,
    );
  }
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A new page at the console's sign-in form, with page errors collected into `problems`. */
export async function openConsole(
  browser: Browser,
  apiUrl: string,
  problems: string[],
): Promise<Page> {
  const page = await browser.newPage({ viewport: VIEWPORT });
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (error) => problems.push(error.message));
  await page.goto(`${apiUrl}/`);
  await page.waitForSelector("form.login");
  return page;
}

/** Signs in with `token` through the form; resolves once the main navigation shows. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.fill("#token", token);
  await page.click("form.login button[type=submit]");
  await page.waitForSelector("nav[aria-label=Main]");
}

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/** axe-core's serious and critical violations on the page as it is, one line each. */
export async function axeViolations(page: Page, name: string): Promise<string[]> {
  const loaded = await page.evaluate(() => "axe" in globalThis);
  // Evaluated through the DevTools protocol, which the page's CSP does not apply to.
  if (!loaded) await page.evaluate(AXE_SOURCE);
  const violations: Violation[] = await page.evaluate(async () => {
    const axe = (globalThis as unknown as {
      axe: {
        run(): Promise<
          {
            violations: {
              id: string;
              impact: string | null;
              help: string;
              nodes: { target: string[] }[];
            }[];
          }
        >;
      };
    }).axe;
    const result = await axe.run();
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(" ")),
    }));
  });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${name}: ${v.impact} ${v.id} (${v.help}) at ${v.targets.join(", ")}`);
}

/** Saves the page's top (or all of it) as tests/out/console/<name>.png. */
export async function screenshot(
  page: Page,
  name: string,
  options: { fullPage?: boolean } = {},
): Promise<void> {
  await Deno.mkdir(OUT_DIR, { recursive: true });
  await page.evaluate(() =>
    (globalThis as unknown as { scrollTo(x: number, y: number): void }).scrollTo(0, 0)
  );
  await page.screenshot({ path: join(OUT_DIR, `${name}.png`), fullPage: options.fullPage });
}
