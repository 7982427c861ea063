import assert from "node:assert/strict";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { ADMIN_TOKEN, api, startTestService } from "../orchestrator/_service.ts";
import { axeViolations, installed, launch, openConsole, screenshot, signIn } from "./_browser.ts";

const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

Deno.test({
  name:
    "dashboard's rollout page shows each window group's next opening and waiting_window devices",
  // Local runs without Chromium skip; CI installs it, so there a missing browser fails.
  ignore: !installed && !Deno.env.get("CI"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"));
    let browser: Browser | undefined;
    try {
      const ids: string[] = [];
      for (const site of ["berlin", "tokyo"]) {
        const id = crypto.randomUUID();
        const registered = await api(service, "POST", "/v1/devices", {
          id,
          publicKey: KEY,
          tags: { site },
        });
        assert.equal(registered.status, 201);
        ids.push(id);
      }
      // Windows that open twelve hours from now: closed while the page is looked at.
      const hour = (new Date().getUTCHours() + 12) % 24;
      const window = [{ start: `0 ${hour} * * *`, duration: "1h" }];
      const created = await api<{ id: string }>(service, "POST", "/v1/rollouts", {
        artifact: { url: "https://files.example/fw.bin", digest: "e".repeat(64) },
        policy: {
          name: "nightly",
          stages: [{ percent: 100 }],
          windows: { by: "site", groups: { berlin: window, tokyo: window }, onClose: "hold" },
        },
        targets: { ids },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      browser = await launch();
      const problems: string[] = [];
      const page = await openConsole(browser, service.apiUrl, problems);
      await signIn(page, ADMIN_TOKEN);
      await page.goto(`${service.apiUrl}/#/rollouts/${created.body.id}`);
      await page.waitForSelector("#window-groups tr[data-group=berlin]");
      assert.equal((await page.textContent("#windows-waiting"))?.trim(), "2");
      const intro = await page.textContent("#windows p") ?? "";
      assert.match(intro, /2 devices waiting window/);
      assert.match(intro, /waits for the next window to activate/);
      for (const site of ["berlin", "tokyo"]) {
        const row = await page.textContent(`#window-groups tr[data-group=${site}]`) ?? "";
        assert.match(row, new RegExp(`${site}\\s*next opens .+\\s*1`));
      }
      await page.waitForSelector(`#rollout-devices tr[data-device="${ids[0]}"]`);
      const waiting = await page.locator("#rollout-devices tbody tr td:nth-child(3)")
        .allTextContents();
      assert.deepEqual(waiting.map((text) => text.replace(/\s+/g, " ").trim()), [
        "pending waiting window",
        "pending waiting window",
      ]);
      assert.deepEqual(await axeViolations(page, "rollout_windows"), []);
      await screenshot(page, "rollout_windows", { fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await browser?.close();
      await service.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
