// The page rides out a daemon restart: it says so, and plays again without a reload.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startFieldcast, launchChromium, countFrames, stateWords, waitFor, waitLive } from "./fieldcast.mjs";

let fieldcast;
let chromium;

after(async () => {
  await chromium?.close();
  await fieldcast?.stop();
});

test("stopping the daemon shows reconnecting/offline; starting it again resumes within 10 s", async () => {
  fieldcast = await startFieldcast({ args: ["--audio", "none"] });
  chromium = await launchChromium();
  const page = await chromium.browser.newPage();
  await page.goto(fieldcast.base + "/");
  await waitLive(page);
  // Survives only as long as the page is not reloaded.
  await page.evaluate(() => (window.sameDocument = true));
  const { port } = fieldcast;

  await fieldcast.stop();
  const seen = await waitFor("the page noticing the daemon is gone", 15000, async () => {
    const words = await stateWords(page);
    return ["reconnecting", "stream offline"].includes(words) && words;
  });
  console.log(`# after the daemon stopped the page said: ${seen}`);
  // Down for a while, as a restart by systemd would be.
  await new Promise((r) => setTimeout(r, 3000));
  assert.notEqual(await stateWords(page), "live");

  fieldcast = await startFieldcast({ port, args: ["--audio", "none"] });
  const restarted = Date.now();
  await waitFor("video resuming after the restart", 10000, async () => {
    if ((await stateWords(page)) !== "live") return false;
    return (await countFrames(page, 500)) >= 5;
  });
  console.log(`# playing again ${Date.now() - restarted} ms after the daemon was healthy`);
  assert.equal(await page.evaluate(() => window.sameDocument), true, "the page was not reloaded");
  assert.equal((await fieldcast.status()).viewer_count, 1, "one session, not a pile of retries");
});
