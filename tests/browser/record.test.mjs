// Recording from the admin page: the recorder's state, the files kept, and a finished
// segment (fragmented MP4, H.264 + Opus) downloaded with the admin token and played by
// Chromium in a <video> element, picture and sound; then recording stopped from the page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, startFieldcast, launchChromium, waitFor } from "./fieldcast.mjs";

const artifacts = new URL("./artifacts/", import.meta.url).pathname;
let fieldcast;
let chromium;

before(async () => {
  fieldcast = await startFieldcast({
    args: ["--record", "--title", "Maths 4B"],
    config: "[record]\nsegment_s = 3\n",
  });
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await fieldcast?.stop();
});

async function recordings() {
  const response = await fetch(`${fieldcast.base}/api/admin/recordings`, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  return response.json();
}

test("a finished segment plays in Chromium from the admin page, and recording stops", async () => {
  const listing = await waitFor("a finished segment", 15000, async () => {
    const listing = await recordings();
    return listing.segments.some((s) => !s.writing) && listing;
  });
  const finished = listing.segments.find((s) => !s.writing);
  assert.match(finished.name, /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-maths-4b\.mp4$/);

  const admin = await chromium.browser.newPage({ viewport: { width: 1280, height: 900 } });
  await admin.goto(`${fieldcast.base}/admin#token=${ADMIN_TOKEN}`);
  await waitFor("the recorder shown as recording", 5000, async () =>
    /\(recording\)/.test(await admin.locator("#recording-state").textContent()),
  );
  const play = admin.locator(`button[data-recording="${finished.name}"][data-action="play"]`);
  await waitFor("the finished segment's Play button", 5000, () => play.isVisible());
  await play.click();
  const played = await waitFor("the segment playing past 1 s with picture and sound", 10000, () =>
    admin.evaluate(() => {
      const video = document.getElementById("playback");
      return video.currentTime > 1 && video.webkitAudioDecodedByteCount > 0
        ? { width: video.videoWidth, height: video.videoHeight, duration: video.duration, error: video.error }
        : null;
    }),
  );
  assert.equal(played.error, null);
  assert.deepEqual([played.width, played.height], [1280, 720]);
  assert.ok(played.duration > 2 && played.duration < 4.5, `a 3 s segment lasts ${played.duration} s`);
  mkdirSync(artifacts, { recursive: true });
  await admin.screenshot({ path: join(artifacts, "admin-recording-1280x900.png"), fullPage: true });

  await admin.click("#record-stop");
  await waitFor("recording off", 5000, async () =>
    /\(off\)/.test(await admin.locator("#recording-state").textContent()),
  );
  const after = await recordings();
  assert.equal(after.status.recording, false);
  assert.ok(after.segments.every((s) => !s.writing), "the last segment is closed");
  await admin.close();
});
