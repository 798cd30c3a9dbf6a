// Many viewers in one browser: five tabs play at once and leave cleanly.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startFieldcast, launchChromium, countFrames, waitFor, waitLive } from "./fieldcast.mjs";

let fieldcast;
let chromium;

before(async () => {
  fieldcast = await startFieldcast({ args: ["--audio", "none"] });
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await fieldcast?.stop();
});

test("five tabs all play; closing them brings the viewer count back to 0", async () => {
  const pages = await Promise.all([1, 2, 3, 4, 5].map(() => chromium.browser.newPage()));
  await Promise.all(pages.map((page) => page.goto(fieldcast.base + "/")));
  await Promise.all(pages.map((page) => waitLive(page, 15000)));
  const frames = await Promise.all(pages.map((page) => countFrames(page, 2000)));
  console.log(`# frames in 2 s per tab: ${frames.join(", ")}`);
  frames.forEach((n, i) => assert.ok(n >= 30, `tab ${i + 1} decoded only ${n} frames in 2 s`));
  // This daemon has no sound: nothing invites a tap for it.
  assert.equal(await pages[0].locator("#sound").textContent(), "No sound");
  assert.equal(await pages[0].locator("#sound").isDisabled(), true);
  assert.equal(await pages[0].locator("#unmute").isVisible(), false, "no 'Tap for sound' without sound");
  await waitFor("status showing 5 viewers", 5000, async () => (await fieldcast.status()).viewer_count === 5);
  await waitFor("every tab showing 5 watching", 8000, async () => {
    const counts = await Promise.all(pages.map((p) => p.locator("#viewers").textContent()));
    return counts.every((c) => c === "5 watching");
  });
  for (const page of pages) await page.close();
  await waitFor("the viewer count back at 0", 5000, async () => {
    const status = await fieldcast.status();
    return status.viewer_count === 0 && status.stream.hub_viewers === 0;
  });
});
