// Many viewers in one browser: five tabs play at once and leave cleanly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { countFrames, framesDecoded, waitFor, waitLive, fieldcastWithBrowser } from "./fieldcast.mjs";

const rig = fieldcastWithBrowser({ args: ["--audio", "none"] });

test("five tabs all play; closing them brings the viewer count back to 0", async () => {
  const pages = await Promise.all([1, 2, 3, 4, 5].map(() => rig.chromium.browser.newPage()));
  await Promise.all(pages.map((page) => page.goto(rig.fieldcast.base + "/")));
  await Promise.all(pages.map((page) => waitLive(page, 15000)));
  // Judged against what the source made in the same window: five decoders, five compositors
  // and the encoder share two cores here, so the encoder runs late and then catches up, and
  // a tab shows fewer frames than it decodes. Every tab must decode most of them (a stalled
  // tab or one the daemon starves decodes half or none) and keep its picture moving. The
  // window is 5 s so that frames in flight at its edges weigh little.
  const madeBefore = (await rig.fieldcast.status()).stream.frames;
  const decodedBefore = await Promise.all(pages.map(framesDecoded));
  const shown = await Promise.all(pages.map((page) => countFrames(page, 5000)));
  const decoded = (await Promise.all(pages.map(framesDecoded))).map((n, i) => n - decodedBefore[i]);
  const made = (await rig.fieldcast.status()).stream.frames - madeBefore;
  console.log(`# in 5 s the source made ${made} frames; decoded per tab ${decoded.join(", ")}; shown ${shown.join(", ")}`);
  assert.ok(made >= 50, `the test pipeline made only ${made} frames in 5 s`);
  decoded.forEach((n, i) =>
    assert.ok(n >= 0.7 * made, `tab ${i + 1} decoded ${n} frames of the ${made} the source made`),
  );
  shown.forEach((n, i) => assert.ok(n >= 0.25 * made, `tab ${i + 1} showed only ${n} frames in 5 s (${made} made)`));
  // This daemon has no sound: nothing invites a tap for it.
  assert.equal(await pages[0].locator("#sound").textContent(), "No sound");
  assert.equal(await pages[0].locator("#sound").isDisabled(), true);
  assert.equal(await pages[0].locator("#unmute").isVisible(), false, "no 'Tap for sound' without sound");
  await waitFor("status showing 5 viewers", 5000, async () => (await rig.fieldcast.status()).viewer_count === 5);
  await waitFor("every tab showing 5 watching", 8000, async () => {
    const counts = await Promise.all(pages.map((p) => p.locator("#viewers").textContent()));
    return counts.every((c) => c === "5 watching");
  });
  const closed = Date.now();
  for (const page of pages) await page.close();
  // A closing tab says goodbye (DELETE with keepalive); a tab whose goodbye is lost is let go
  // once ICE gives it up: 5 s without a packet to disconnected, 15 s more to failed. A viewer
  // the daemon never lets go fails this either way.
  await waitFor("the viewer count back at 0", 25000, async () => {
    const status = await rig.fieldcast.status();
    return status.viewer_count === 0 && status.stream.hub_viewers === 0;
  });
  console.log(`# the viewer count was back at 0 ${Date.now() - closed} ms after the tabs closed`);
});
