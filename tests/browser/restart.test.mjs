// The camera side fails mid-match and fieldcast rebuilds its pipeline: a watching page keeps
// its WHEP session (no new POST /whep, no reconnect) and its picture comes back within 3 s of
// the pipeline playing again.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startFieldcast, launchChromium, framesDecoded, waitFor, waitLive } from "./fieldcast.mjs";

// The source ends after this long each time, so the pipeline is rebuilt again and again.
const SOURCE_SECONDS = 4;
const REBUILDS = 3;
const RESUME_LIMIT_MS = 3000;

// Chromium's jitter-buffer delay per frame (ms) over the next `ms` milliseconds: timestamps
// that do not follow the clock make it hold frames.
async function jitterBufferDelayOver(page, ms) {
  const sample = () =>
    page.evaluate(async () => {
      let out = null;
      (await window.fieldcast.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") out = s;
      });
      return { delay: out.jitterBufferDelay, emitted: out.jitterBufferEmittedCount };
    });
  const first = await sample();
  await new Promise((r) => setTimeout(r, ms));
  const second = await sample();
  return (1000 * (second.delay - first.delay)) / Math.max(1, second.emitted - first.emitted);
}

let fieldcast;
let chromium;

after(async () => {
  await chromium?.close();
  await fieldcast?.stop();
});

test(`a page stays connected and plays on through ${REBUILDS} pipeline rebuilds`, async () => {
  fieldcast = await startFieldcast({
    args: ["--audio", "none"],
    pipeline:
      `videotestsrc is-live=true pattern=ball num-buffers=${SOURCE_SECONDS * 30} ` +
      "! video/x-raw,width=640,height=360,framerate=30/1 ! {encoder} ! {rtp}",
  });
  chromium = await launchChromium();
  const page = await chromium.browser.newPage();
  const posts = [];
  page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === "/whep") posts.push(request.url());
  });
  await page.goto(fieldcast.base + "/");
  await waitLive(page);
  await page.evaluate(() => (window.sameDocument = true));
  // Every 50 ms the page notes when its decoded-frame count moved: the gaps are the outages.
  await page.evaluate(() => {
    window.decodedAt = [];
    let last = 0;
    setInterval(async () => {
      (await window.fieldcast.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > last) {
          last = s.framesDecoded;
          window.decodedAt.push(Date.now());
        }
      });
    }, 50);
  });
  const session = await page.evaluate(() => window.fieldcast.sessionUrl);
  assert.ok(session, "the page has a WHEP session");
  const pipeline = async () => (await fieldcast.status()).pipeline;

  const resumes = [];
  const delays = [];
  for (let i = 0; i < REBUILDS; i++) {
    const { restarts } = await pipeline();
    // Wait (bounded) for the source to end and the pipeline to play again.
    await waitFor(`pipeline rebuild ${i + 1} (restarts > ${restarts})`, SOURCE_SECONDS * 1000 + 8000, async () => {
      const now = await pipeline();
      return now.restarts > restarts && now.state === "playing";
    });
    const playing = Date.now();
    const decodedThen = await framesDecoded(page);
    // Fresh frames: the count moves on by more than a frame or two still in flight.
    await waitFor(
      `video resuming after rebuild ${i + 1}, within ${RESUME_LIMIT_MS} ms of the pipeline playing again`,
      RESUME_LIMIT_MS,
      async () => (await framesDecoded(page)) > decodedThen + 3,
    );
    resumes.push(Date.now() - playing);
    delays.push(await jitterBufferDelayOver(page, 1000));
  }
  const decodedAt = await page.evaluate(() => window.decodedAt);
  const outages = decodedAt
    .slice(1)
    .map((at, i) => at - decodedAt[i])
    .filter((gap) => gap > 300);
  console.log(
    `# video resumed ${resumes.join(", ")} ms after the status said the pipeline played again; ` +
      `the page decoded nothing for ${outages.join(", ")} ms; ` +
      `jitter-buffer delay per frame in the second after: ${delays.map((d) => d.toFixed(0)).join(", ")} ms`,
  );
  assert.ok(outages.length >= REBUILDS, `each rebuild shows as a pause in decoding: ${outages.join(", ")} ms`);

  assert.equal(posts.length, 1, `one POST /whep, saw ${posts.length}: ${posts.join(", ")}`);
  assert.equal(await page.evaluate(() => window.fieldcast.sessionUrl), session, "the same WHEP session");
  assert.equal(await page.evaluate(() => window.fieldcast.reconnects), 0, "the page never reconnected");
  assert.equal(await page.evaluate(() => window.sameDocument), true, "the page was not reloaded");
  assert.equal(await page.evaluate(() => window.fieldcast.state), "live");
  const status = await fieldcast.status();
  assert.equal(status.viewer_count, 1, "one session on the server");
  assert.ok(
    fieldcast.log().match(/viewer connected/g)?.length === 1,
    "the daemon logged one viewer connecting",
  );
});
