// The admin page: closed without the admin token, and with it the pipeline, the encoder and
// every viewer with its stats, and a button that ends a viewer's session.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, waitFor, waitLive, fieldcastWithBrowser } from "./fieldcast.mjs";

const artifacts = new URL("./artifacts/", import.meta.url).pathname;
const rig = fieldcastWithBrowser({ args: ["--audio", "none", "--title", "U12 final"] });

test("without the token the admin page asks for it and shows nothing", async () => {
  const page = await rig.chromium.browser.newPage();
  await page.goto(rig.fieldcast.base + "/admin");
  await waitFor("the token form", 3000, () => page.locator("#login").isVisible());
  assert.equal(await page.locator("#panel").isVisible(), false);
  await page.fill("#token", "a-wrong-guess-123");
  await page.click("#login button");
  await waitFor("the page refusing the wrong token", 3000, async () =>
    /not the admin token/.test(await page.locator("#login-error").textContent()),
  );
  assert.equal(await page.locator("#panel").isVisible(), false);
  await page.close();
});

test("with the token it shows the pipeline and the viewers, and ends a session", async () => {
  const viewer = await rig.chromium.browser.newPage();
  await viewer.goto(rig.fieldcast.base + "/");
  await waitLive(viewer);
  const session = await viewer.evaluate(() => window.fieldcast.sessionUrl);
  const id = session.split("/").pop();

  const admin = await rig.chromium.browser.newPage({ viewport: { width: 1280, height: 720 } });
  await admin.goto(`${rig.fieldcast.base}/admin#token=${ADMIN_TOKEN}`);
  await waitFor("the admin panel", 5000, () => admin.locator("#panel").isVisible());
  assert.equal(await admin.evaluate(() => location.hash), "", "the token is taken off the address bar");
  const pipeline = await admin.locator("#pipeline").textContent();
  assert.match(pipeline, /playing/);
  assert.match(pipeline, /x264enc|openh264enc/, `the encoder is shown: ${pipeline}`);
  assert.match(pipeline, /1280×720 @ 30 fps/, pipeline);
  assert.match(await admin.locator("#title").textContent(), /U12 final/);
  const end = admin.locator(`button[data-session="${id}"]`);
  await waitFor("the viewer's row", 5000, () => end.isVisible());
  const row = await admin.locator("#viewers tr").first().textContent();
  assert.match(row, /127\.0\.0\.1:\d+/, `the viewer's address: ${row}`);
  assert.match(row, /connected/, row);
  mkdirSync(artifacts, { recursive: true });
  await admin.screenshot({ path: join(artifacts, "admin-1280x720.png") });

  await end.click();
  await waitFor("the session gone from the daemon", 5000, async () =>
    (await rig.fieldcast.status()).viewers.every((v) => v.id !== id),
  );
  await waitFor("the row gone from the page", 5000, async () => (await end.count()) === 0);
  await admin.close();
  await viewer.close();
});
