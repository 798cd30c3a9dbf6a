// The page on a phone and on a projector: the video fills its box without overflow, the
// controls are reachable by keyboard, and the share box shows a QR code of the link.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startFieldcast, launchChromium, waitLive } from "./fieldcast.mjs";

const artifacts = new URL("./artifacts/", import.meta.url).pathname;
let fieldcast;
let chromium;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  fieldcast = await startFieldcast({ args: ["--title", "Under-11s v Riverside"] });
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await fieldcast?.stop();
});

/** Where things are on the page, in CSS pixels. */
function geometry(page) {
  return page.evaluate(() => {
    const box = (el) => {
      const r = el.getBoundingClientRect();
      return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height };
    };
    const video = document.querySelector("video");
    return {
      viewport: { width: innerWidth, height: innerHeight },
      scroll: { width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight },
      video: box(video),
      stage: box(document.getElementById("stage")),
      picture: { width: video.videoWidth, height: video.videoHeight },
      buttons: [...document.querySelectorAll(".controls button:not([hidden])")].map((b) => ({ name: b.textContent, ...box(b) })),
      title: document.getElementById("title").textContent,
    };
  });
}

for (const [width, height] of [
  [360, 740],
  [1920, 1080],
]) {
  test(`${width}x${height}: the video fills its box, nothing overflows`, async () => {
    const page = await chromium.browser.newPage({ viewport: { width, height } });
    await page.goto(fieldcast.base + "/");
    await waitLive(page);
    await page.waitForFunction(() => document.getElementById("title").textContent !== "Live", null, { timeout: 8000 });
    const path = join(artifacts, `viewer-${width}x${height}.png`);
    await page.screenshot({ path });
    console.log(`# screenshot: ${path}`);
    const g = await geometry(page);
    assert.equal(g.title, "Under-11s v Riverside");
    assert.ok(g.scroll.width <= width && g.scroll.height <= height, `the page overflows: ${JSON.stringify(g.scroll)}`);
    assert.deepEqual(
      [g.video.left, g.video.top, g.video.width, g.video.height],
      [g.stage.left, g.stage.top, g.stage.width, g.stage.height],
      "the video element fills the stage",
    );
    // object-fit: contain; the picture touches two opposite edges of its box.
    const scale = Math.min(g.video.width / g.picture.width, g.video.height / g.picture.height);
    const shown = { width: g.picture.width * scale, height: g.picture.height * scale };
    assert.ok(
      Math.abs(shown.width - g.video.width) < 1 || Math.abs(shown.height - g.video.height) < 1,
      `the picture (${shown.width}x${shown.height}) does not fill its box (${g.video.width}x${g.video.height})`,
    );
    assert.ok(g.video.width >= width - 1, `the video is ${g.video.width} px wide in a ${width} px window`);
    for (const b of g.buttons) {
      assert.ok(b.left >= 0 && b.right <= width && b.top >= 0 && b.bottom <= height, `button ${b.name} is off screen`);
      assert.ok(b.height >= 24, `button ${b.name} is ${b.height} px tall, too small to tap`);
    }
    await page.close();
  });
}

test("keyboard: Tab reaches the controls and Enter opens the share box with a QR code", async () => {
  const page = await chromium.browser.newPage();
  await page.goto(fieldcast.base + "/?token=abc");
  await waitLive(page);
  const focused = [];
  for (let i = 0; i < 8; i += 1) {
    await page.keyboard.press("Tab");
    focused.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName));
  }
  assert.ok(focused.includes("fullscreen") && focused.includes("share-button"), `Tab went to ${focused.join(", ")}`);
  await page.focus("#share-button");
  await page.keyboard.press("Enter");
  const dialog = page.locator("#share");
  assert.equal(await dialog.isVisible(), true, "Enter on Share opens the share box");
  const link = await page.locator("#share-link").textContent();
  assert.equal(link, `${fieldcast.base}/?token=abc`, "the shared link carries the token");
  await page.waitForFunction(() => document.getElementById("share-qr").naturalWidth > 0, null, { timeout: 5000 });
  const qr = await page.locator("#share-qr").getAttribute("src");
  assert.equal(qr, `/share.svg?url=${encodeURIComponent(link)}`);
  await page.keyboard.press("Escape");
  assert.equal(await dialog.isVisible(), false, "Escape closes it");
  await page.close();
});
