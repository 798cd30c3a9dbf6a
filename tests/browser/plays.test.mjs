// The viewer page plays the stream in headless Chromium: moving H.264 picture at the source
// frame rate, sound arriving, the stats overlay filled in.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  countFrames,
  fieldcastWithBrowser,
  inboundCodec,
  pictureVariance,
  stateWords,
  waitFor,
  waitLive,
} from "./fieldcast.mjs";

const rig = fieldcastWithBrowser();

test("plays H.264 at the source frame rate, with a picture that is not uniform", async () => {
  const page = await rig.chromium.browser.newPage();
  await page.goto(rig.fieldcast.base + "/");
  await waitLive(page);
  // The source's rate over the same window: a busy machine slows the encoder, and the
  // browser can only show what was sent.
  const before = (await rig.fieldcast.status()).stream;
  const started = performance.now();
  const frames = await countFrames(page, 3000);
  const after = (await rig.fieldcast.status()).stream;
  const seconds = (performance.now() - started) / 1000;
  const sourceFps = (after.frames - before.frames) / seconds;
  assert.ok(sourceFps > 20, `the test pipeline produces about 30 fps; it made ${sourceFps.toFixed(1)}`);
  const fps = frames / 3;
  console.log(`# decoded ${frames} frames in 3 s (${fps.toFixed(1)} fps; source ${sourceFps.toFixed(1)} fps)`);
  assert.ok(
    Math.abs(fps - sourceFps) <= 0.2 * sourceFps,
    `decoded ${fps.toFixed(1)} fps, not within 20 % of the source's ${sourceFps.toFixed(1)} fps`,
  );
  const variance = await pictureVariance(page);
  assert.ok(variance > 100, `the picture is nearly uniform (luminance variance ${variance.toFixed(1)})`);
  assert.equal(await inboundCodec(page), "video/H264");
  assert.equal(await stateWords(page), "live");
  assert.equal(await page.locator("#live").isVisible(), true, "the LIVE badge shows");
  await page.close();
});

test("sound arrives, muted until the viewer asks for it", async () => {
  const page = await rig.chromium.browser.newPage();
  await page.goto(rig.fieldcast.base + "/");
  await waitLive(page);
  const samples = () =>
    page.evaluate(async () => {
      let total = 0;
      (await window.fieldcast.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") total = s.totalSamplesReceived;
      });
      return total;
    });
  const first = await samples();
  await new Promise((r) => setTimeout(r, 1000));
  const second = await samples();
  assert.ok(second - first > 24000, `audio samples went from ${first} to ${second} in 1 s (48 kHz expected)`);
  assert.equal(await page.evaluate(() => document.querySelector("video").muted), true, "starts muted");
  await page.getByRole("button", { name: "Tap for sound" }).click();
  assert.equal(await page.evaluate(() => document.querySelector("video").muted), false, "unmuted by the tap");
  assert.equal(await page.locator("#sound").textContent(), "Sound on");
  assert.equal(await page.locator("#unmute").isVisible(), false, "the tap prompt goes away");
  await page.close();
});

test("the stats overlay (key s) shows values after 2 s", async () => {
  const page = await rig.chromium.browser.newPage();
  await page.goto(rig.fieldcast.base + "/");
  await waitLive(page);
  await page.keyboard.press("s");
  assert.equal(await page.locator("#stats").isVisible(), true, "key s opens the overlay");
  await new Promise((r) => setTimeout(r, 2000));
  const text = await page.locator("#stats").textContent();
  console.log(text.replace(/^/gm, "# "));
  const value = (label) => new RegExp(`^${label}\\s+(.*)$`, "m").exec(text)?.[1];
  assert.match(value("resolution"), /^\d+x\d+$/);
  assert.match(value("frame rate"), /^\d+(\.\d+)? fps$/);
  assert.match(value("bitrate"), /^\d+ kbit\/s$/);
  assert.match(value("packet loss"), /^\d+(\.\d+)? % \(\d+ lost\)$/);
  assert.match(value("round trip"), /^\d+(\.\d+)? ms$/);
  assert.match(value("jitter buf\\."), /^\d+ ms$/);
  assert.equal(value("codec"), "H264");
  assert.match(value("path"), /^(host|srflx|prflx|relay) -> (host|srflx|prflx|relay) \(udp\)$/);
  assert.match(value("first frame"), /^\d+ ms$/);
  await page.keyboard.press("s");
  assert.equal(await page.locator("#stats").isVisible(), false, "key s closes it again");
  await page.close();
});

test("a browser without H.264 is told why there is no picture, and nothing is sent", async () => {
  const page = await rig.chromium.browser.newPage();
  // What Firefox without its OpenH264 plugin reports: no H.264 among its video codecs.
  await page.addInitScript(() => {
    const original = RTCRtpReceiver.getCapabilities;
    RTCRtpReceiver.getCapabilities = (kind) => {
      const capabilities = original.call(RTCRtpReceiver, kind);
      if (kind === "video") capabilities.codecs = capabilities.codecs.filter((c) => !/h264/i.test(c.mimeType));
      return capabilities;
    };
  });
  const posts = [];
  page.on("request", (r) => r.method() === "POST" && posts.push(r.url()));
  await page.goto(rig.fieldcast.base + "/");
  await waitFor("the page saying it cannot play", 5000, async () => (await stateWords(page)) === "cannot play");
  const notice = await page.locator("#notice").textContent();
  assert.match(notice, /cannot decode H\.264/);
  assert.deepEqual(posts, [], "no offer is sent that could not be played");
  await page.close();
});
