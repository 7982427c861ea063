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
  waitForRollout,
} from "../orchestrator/_service.ts";

Deno.test({
  name:
    "console in headless Chromium: each device's server key, the keys panel, and a key rotation shown as one",
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
      const [rotated, left] = [devices.slice(0, 2).map((d) => d.id), devices[2]!.id];
      const created = await api(service, "POST", "/v1/server/rotate-key", {
        targets: { ids: rotated },
        name: "Key of 2026",
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await waitForRollout(service, created.body.id as string, (r) => r.state === "completed");
      const server = (await api(service, "GET", "/v1/server")).body as {
        currentKey: { fingerprint: string };
        nextKey: { fingerprint: string };
      };
      const [current, next] = [server.currentKey.fingerprint, server.nextKey.fingerprint];
      browser = await launch();
      const page = await openConsole(browser, service.apiUrl, problems);
      await signIn(page, ADMIN_TOKEN);

      await t.step("the Devices table says which key each device trusts", async () => {
        await page.goto(`${service.apiUrl}/#/devices`);
        await page.locator("#devices tbody tr").nth(2).waitFor();
        await page.locator("#server-keys").waitFor();
        const panel = (await page.textContent("#server-keys"))!.replace(/\s+/g, " ");
        assert.match(panel, new RegExp(`current ${current}, next ${next}\\.`));
        assert.match(panel, new RegExp(`${current.slice(0, 8)} current 1`));
        assert.match(panel, new RegExp(`${next.slice(0, 8)} next 2`));
        for (const id of rotated) {
          const cell = page.locator(`#devices tr[data-id="${id}"] td`).last();
          assert.equal(
            (await cell.textContent())!.replace(/\s+/g, " ").trim(),
            `${next.slice(0, 8)} next`,
          );
        }
        const cell = page.locator(`#devices tr[data-id="${left}"] td`).last();
        assert.equal(
          (await cell.textContent())!.replace(/\s+/g, " ").trim(),
          `${current.slice(0, 8)} current`,
        );
        assert.deepEqual(await axeViolations(page, "Devices with server keys"), []);
      });
      await t.step("a device page shows its server key", async () => {
        await page.goto(`${service.apiUrl}/#/devices/${rotated[0]}`);
        await page.locator("#server-key .mono").waitFor();
        assert.equal(await page.getAttribute("#server-key .mono", "title"), next);
      });
      await t.step("the rollout page and the Rollouts list say key rotation", async () => {
        await page.goto(`${service.apiUrl}/#/rollouts/${created.body.id}`);
        await page.locator("#rotate-key").waitFor();
        assert.equal(
          (await page.textContent("#rotate-key"))!.replace(/\s+/g, " "),
          `key rotation: each device trusts server key ${next}`,
        );
        await page.goto(`${service.apiUrl}/#/rollouts`);
        const row = page.locator("#rollouts tr", { hasText: "Key of 2026" });
        await row.waitFor();
        assert.equal(await row.locator(".rollback").textContent(), "key rotation");
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
