import assert from "node:assert/strict";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { axeViolations, installed, launch, openConsole, signIn } from "./_browser.ts";
import {
  ADMIN_TOKEN,
  api,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "../orchestrator/_service.ts";

const POLICY = { name: "whole", stages: [{ percent: 100 }] };

Deno.test({
  name: "console in headless Chromium: a rollback from New rollout, shown as one",
  ignore: !installed && !Deno.env.get("CI"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    let devices: TestDevice[] = [];
    let browser: Browser | undefined;
    const problems: string[] = [];
    try {
      devices = await startDevices(service, root, 3);
      const ids = devices.map((d) => d.id);
      const digests: string[] = [];
      for (let i = 0; i < 2; i++) {
        const digest = await upload(service, crypto.getRandomValues(new Uint8Array(4096)));
        digests.push(digest);
        const created = await api(service, "POST", "/v1/rollouts", {
          artifact: { digest },
          policy: POLICY,
          targets: { ids },
        });
        await waitForRollout(service, created.body.id as string, (r) => r.state === "completed");
      }
      browser = await launch();
      const page = await openConsole(browser, service.apiUrl, problems);
      await signIn(page, ADMIN_TOKEN);

      await t.step("New rollout with the Roll back choice creates a rollback", async () => {
        await page.goto(`${service.apiUrl}/#/rollouts/new`);
        await page.getByRole("heading", { level: 1, name: "New rollout" }).waitFor();
        await page.getByLabel("Name").fill("Back to the first firmware");
        await page.getByLabel("Artifact").selectOption("rollback");
        await page.getByLabel("Policy").selectOption("fast");
        await page.getByRole("button", { name: "Create rollout" }).click();
        await page.waitForURL(/#\/rollouts\/[0-9a-f-]{36}$/);
      });
      await t.step(
        "the rollout page says rollback, shows each device's target, completes",
        async () => {
          await page.waitForSelector("#state .badge[data-state=completed]", { timeout: 60_000 });
          assert.equal(
            await page.textContent("#rollback"),
            "rollback: each device goes back to its previous version",
          );
          await page.locator("#rollout-devices tbody tr").nth(2).waitFor();
          const cells = await page.locator("#rollout-devices tbody tr td.mono").allTextContents();
          assert.deepEqual(cells, ids.map(() => `${digests[0]!.slice(0, 16)}…`));
          assert.deepEqual(await axeViolations(page, "Rollback"), []);
          for (const device of devices) {
            assert.equal(device.running.agent.status().current, digests[0]);
          }
        },
      );
      await t.step("the Rollouts list shows it as a rollback", async () => {
        await page.goto(`${service.apiUrl}/#/rollouts`);
        const row = page.locator("#rollouts tr", { hasText: "Back to the first firmware" });
        await row.waitFor();
        assert.equal(await row.locator(".rollback").textContent(), "rollback");
      });
      assert.deepEqual(problems, []);
    } finally {
      await browser?.close();
      await Promise.all(devices.map((device) => device.running.close()));
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
