// RTP from an external encoder with a 3 s GOP: fieldcast cannot ask it for a keyframe, so a
// viewer joining mid-GOP is sent the frames since the last keyframe. Chromium must show a
// picture at once and then play live, with no backlog left in its jitter buffer.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { startFieldcast, launchChromium, countFrames, waitLive } from "./fieldcast.mjs";

const GOP_FRAMES = 90; // 3 s at 30 fps

let fieldcast;
let chromium;
let sender;

async function freeUdpPort() {
  const socket = createSocket("udp4");
  await new Promise((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise((resolve) => socket.close(resolve));
  return port;
}

before(async () => {
  const port = await freeUdpPort();
  const caps = "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96";
  fieldcast = await startFieldcast({
    args: ["--audio", "none"],
    pipeline: `udpsrc address=127.0.0.1 port=${port} caps="${caps}" ! rtph264depay ! {rtp}`,
    beforeHealthy: () => {
      sender = spawn(
        "gst-launch-1.0",
        [
          "-q",
          ..."videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1".split(" "),
          ..."! x264enc tune=zerolatency speed-preset=ultrafast bitrate=1500".split(" "),
          `key-int-max=${GOP_FRAMES}`,
          ..."! rtph264pay pt=96 mtu=1200 config-interval=-1 ! udpsink host=127.0.0.1".split(" "),
          `port=${port}`,
        ],
        { stdio: "ignore" },
      );
    },
  });
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await fieldcast?.stop();
  sender?.kill("SIGKILL");
});

// Jitter-buffer delay per frame (ms) and frames decoded over `ms` milliseconds.
async function playoutOver(page, ms) {
  const sample = () =>
    page.evaluate(async () => {
      let out = null;
      (await window.fieldcast.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") out = s;
      });
      return { delay: out.jitterBufferDelay, emitted: out.jitterBufferEmittedCount, decoded: out.framesDecoded };
    });
  const first = await sample();
  await new Promise((r) => setTimeout(r, ms));
  const second = await sample();
  return {
    delayMs: (1000 * (second.delay - first.delay)) / Math.max(1, second.emitted - first.emitted),
    decoded: second.decoded - first.decoded,
  };
}

test("a viewer joining mid-GOP sees a picture at once and then plays live", async () => {
  const status = await fieldcast.status();
  assert.equal(status.stream.join_start, "cached_gop", "no encoder of ours: new viewers start on the cached GOP");
  const joins = [700, 1500, 2300]; // ms after a keyframe, spread over the 3 s GOP
  for (const [i, offset] of joins.entries()) {
    // Join `offset` ms after the sender's latest keyframe, as fieldcast counts them.
    const keyframes = (await fieldcast.status()).stream.keyframes;
    const deadline = Date.now() + 2 * GOP_FRAMES * 34;
    while ((await fieldcast.status()).stream.keyframes === keyframes) {
      assert.ok(Date.now() < deadline, "the sender's next keyframe did not reach fieldcast within two GOPs");
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, offset));
    const page = await chromium.browser.newPage();
    await page.goto(fieldcast.base + "/");
    await waitLive(page, 5000);
    const ttff = await page.evaluate(() => window.fieldcast.offerToFirstFrameMs);
    await new Promise((r) => setTimeout(r, 2000));
    const playout = await playoutOver(page, 2000);
    const fps = (await countFrames(page, 2000)) / 2;
    const stream = (await fieldcast.status()).stream;
    const replayed = stream.replayed_joins;
    console.log(
      `# join ${offset} ms into the GOP: first frame ${ttff.toFixed(0)} ms after the offer; ` +
        `then ${playout.delayMs.toFixed(1)} ms jitter-buffer delay per frame, ${playout.decoded} frames decoded in 2 s, ${fps} fps shown; ` +
        `GOP replays for picture loss so far: ${stream.replayed_repairs}`,
    );
    assert.equal(replayed, i + 1, "the viewer was started on the cached GOP");
    assert.ok(ttff < 700, `first frame ${ttff.toFixed(0)} ms after the offer, ${offset} ms into a GOP (limit 700 ms)`);
    assert.ok(
      playout.delayMs < 100,
      `a backlog stays in Chromium's jitter buffer: ${playout.delayMs.toFixed(1)} ms per frame (limit 100 ms)`,
    );
    assert.ok(playout.decoded >= 45, `only ${playout.decoded} frames decoded in 2 s once live (about 60 expected)`);
    assert.ok(fps >= 20, `only ${fps} fps shown once live (about 30 expected)`);
    await page.close();
  }
});
