import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startFieldcast, launchChromium, countFrames, inboundCodec, waitFor } from "./fieldcast.mjs";

let fieldcast;
let chromium;

before(async () => {
  fieldcast = await startFieldcast();
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await fieldcast?.stop();
});

test("the viewer page plays H.264 video in Chromium", async () => {
  const page = await chromium.browser.newPage();
  const opened = Date.now();
  await page.goto(fieldcast.base + "/");
  await waitFor("the <video> showing its first frame", 10000, () =>
    page.evaluate(() => document.querySelector("video").readyState >= 2),
  );
  const firstFrameMs = Date.now() - opened;
  const frames = await countFrames(page, 2000);
  const codec = await inboundCodec(page);
  console.log(`first frame ${firstFrameMs} ms after opening; ${frames} frames in 2 s; codec ${codec}`);
  assert.ok(frames >= 30, `expected about 60 decoded frames in 2 s at 30 fps, got ${frames}`);
  assert.equal(codec, "video/H264");
  const status = await fieldcast.status();
  assert.equal(status.viewer_count, 1, "the page is one viewer");
  await page.close();
  await waitFor("the closed page's session removed", 10000, async () => {
    const s = await fieldcast.status();
    return s.viewer_count === 0;
  });
});
