import assert from "node:assert/strict";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { axeViolations, installed, launch, openConsole, signIn } from "./_browser.ts";
import { ADMIN_TOKEN, api, startTestService, upload } from "../orchestrator/_service.ts";

/** Fills in and submits New rollout: the first artifact, policy "fast", a start time. */
async function submitForm(
  page: Page,
  form: { apiUrl: string; name: string; startAt: string },
) {
  const { apiUrl, name, startAt } = form;
  await page.goto(`${apiUrl}/#/rollouts/new`);
  await page.getByRole("heading", { level: 1, name: "New rollout" }).waitFor();
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.locator("#rollout-artifact option").nth(2).waitFor({ state: "attached" });
  const digest = await page.locator("#rollout-artifact option").nth(2).getAttribute("value");
  await page.getByLabel("Artifact", { exact: true }).selectOption(digest!);
  await page.getByLabel("Policy", { exact: true }).selectOption("fast");
  await page.getByLabel(/^Start at/).fill(startAt);
  await page.getByRole("button", { name: "Create rollout" }).click();
}

Deno.test({
  name: "console in headless Chromium: New rollout schedules a start, and refuses one in the past",
  ignore: !installed && !Deno.env.get("CI"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    let browser: Browser | undefined;
    const problems: string[] = [];
    try {
      const registered = await api(service, "POST", "/v1/devices", {
        id: crypto.randomUUID(),
        publicKey: btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))),
      });
      assert.equal(registered.status, 201);
      await upload(service, crypto.getRandomValues(new Uint8Array(1024)));
      browser = await launch();
      const page = await openConsole(browser, service.apiUrl, problems);
      await signIn(page, ADMIN_TOKEN);

      await t.step("a start time in the past is refused with the server's reason", async () => {
        await submitForm(page, {
          apiUrl: service.apiUrl,
          name: "Too late",
          startAt: "2020-01-01T02:00",
        });
        await page.getByText(/start_in_past|in the past/).first().waitFor();
        assert.match(page.url(), /#\/rollouts\/new$/);
        const list = await api(service, "GET", "/v1/rollouts");
        assert.deepEqual(list.body.items, []);
      });
      await t.step("a future start time creates a scheduled rollout starting then", async () => {
        await submitForm(page, {
          apiUrl: service.apiUrl,
          name: "Sunday night",
          startAt: "2030-06-02T02:00",
        });
        await page.waitForURL(/#\/rollouts\/[0-9a-f-]{36}$/);
        await page.locator("#scheduled").waitFor();
        const id = page.url().split("/").pop()!;
        const rollout = await api(service, "GET", `/v1/rollouts/${id}`);
        assert.equal(rollout.body.state, "scheduled");
        // The browser's local 02:00 on that day, whatever its time zone.
        const expected = await page.evaluate(() => new Date("2030-06-02T02:00").toISOString());
        assert.equal(rollout.body.startAt, expected);
        assert.deepEqual(await axeViolations(page, "Scheduled rollout"), []);
      });
      assert.deepEqual(problems, []);
    } finally {
      await browser?.close();
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
