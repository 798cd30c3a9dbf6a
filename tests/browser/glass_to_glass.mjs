// Glass-to-glass latency in headless Chromium, per frame: the `test` pipeline stamps each
// frame with the wall-clock time it passed the source's probe (its capture, for this source),
// the page reads the stamp back from every frame it shows and compares it with when the frame
// was shown, on the same machine and clock. Viewers beyond the page come from the load client.
// A benchmark, not a test:
//   node tests/browser/glass_to_glass.mjs [--viewers 1] [--seconds 60] [--settle 5] [--no-audio]
//                                         [--json out.json]
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { startFieldcast, launchChromium, waitLive } from "./fieldcast.mjs";
import { startReading, drain, summarise, alignToDescribedFrames } from "./capture_stamp.mjs";
import { startLoadViewers } from "./load_client.mjs";

/** The page's cumulative jitter-buffer counters (inbound-rtp), per kind. */
export async function jitterBufferCounters(page) {
  return page.evaluate(async () => {
    const counters = {};
    (await window.fieldcast.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp") {
        counters[s.kind] = { delay: s.jitterBufferDelay ?? 0, target: s.jitterBufferTargetDelay ?? 0, emitted: s.jitterBufferEmittedCount ?? 0 };
      }
    });
    return counters;
  });
}

/** Mean jitter-buffer delay and target per kind between two readings, in ms. */
export function jitterBufferMeans(before, after) {
  const means = {};
  for (const [kind, end] of Object.entries(after)) {
    const start = before[kind] ?? { delay: 0, target: 0, emitted: 0 };
    const emitted = end.emitted - start.emitted;
    means[kind] = emitted > 0
      ? { delay_ms: ((end.delay - start.delay) / emitted) * 1000, target_ms: ((end.target - start.target) / emitted) * 1000 }
      : null;
  }
  return means;
}

/**
 * One measurement: a daemon, `viewers - 1` load-client viewers and the page; `settle` seconds
 * after the page is live, `seconds` of frames. Returns the figures and the per-frame samples.
 */
export async function measureGlassToGlass({ viewers = 1, seconds = 60, settle = 5, audio = true, log = () => {} } = {}) {
  // With sound, as viewers get it: the browser then also keeps picture and sound in sync.
  const fieldcast = await startFieldcast({ args: audio ? [] : ["--audio", "none"] });
  let load;
  let chromium;
  try {
    if (viewers > 1) {
      load = await startLoadViewers(fieldcast.base, viewers - 1);
      log(`${viewers - 1} load-client viewers watching`);
    }
    chromium = await launchChromium();
    const page = await chromium.browser.newPage();
    await page.goto(fieldcast.base + "/");
    await waitLive(page);
    await startReading(page);
    await new Promise((r) => setTimeout(r, settle * 1000));
    await drain(page);
    const countersBefore = await jitterBufferCounters(page);
    log(`measuring ${seconds} s`);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const taken = await drain(page);
    const jitterBuffers = jitterBufferMeans(countersBefore, await jitterBufferCounters(page));
    const { samples, corrected } = alignToDescribedFrames(taken.samples);
    const reconnects = await page.evaluate(() => window.fieldcast.reconnects);
    const loadTotals = load ? (await load.stop()).totals : null;
    load = null;
    return {
      viewers,
      seconds,
      audio,
      frames: taken.frames,
      unreadable: taken.unreadable,
      skipped: taken.skipped,
      drawn_ahead: corrected,
      latency_ms: summarise(samples.map((s) => s[1])),
      to_receive_ms: summarise(samples.map((s) => s[2])),
      // Where the time after arrival goes: Chromium's own jitter-buffer figures.
      jitter_buffer_ms: jitterBuffers,
      page_reconnects: reconnects,
      load_client: loadTotals,
      // The machine is shared: how busy it was over the last minute.
      load_average_1min: loadavg()[0],
      samples,
    };
  } finally {
    await load?.stop().catch(() => {});
    await chromium?.close();
    await fieldcast.stop();
  }
}

export function describe(r) {
  const f = (v) => (v === null ? "–" : v.toFixed(0));
  const l = r.latency_ms;
  return (
    `${r.viewers} viewer(s), ${r.seconds} s: glass-to-glass p50 ${f(l.p50)} ms, p95 ${f(l.p95)} ms, max ${f(l.max)} ms ` +
    `(min ${f(l.min)}) over ${l.count} frames; ${r.unreadable} of ${r.frames} frames without a readable stamp, ` +
    `${r.drawn_ahead} drawn ahead of their metadata (corrected); ` +
    `capture → received p50 ${f(r.to_receive_ms.p50)} ms, p95 ${f(r.to_receive_ms.p95)} ms; ` +
    `jitter buffer: ${Object.entries(r.jitter_buffer_ms)
      .map(([kind, m]) => `${kind} ${m ? `${f(m.delay_ms)} ms (target ${f(m.target_ms)})` : "–"}`)
      .join(", ")}; ` +
    `${r.page_reconnects} page reconnects` +
    (r.load_client ? `; load client: ${r.load_client.packets_lost} packets lost, ${r.load_client.stalled_viewers} stalled viewers` : "")
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      viewers: { type: "string", default: "1" },
      seconds: { type: "string", default: "60" },
      settle: { type: "string", default: "5" },
      json: { type: "string" },
      "no-audio": { type: "boolean", default: false },
    },
  });
  const result = await measureGlassToGlass({
    viewers: Number(values.viewers),
    seconds: Number(values.seconds),
    settle: Number(values.settle),
    audio: !values["no-audio"],
    log: (line) => console.log(`# ${line}`),
  });
  console.log(describe(result));
  if (values.json) {
    // Figures only: the per-frame samples are for callers that want them, not for the record.
    const { samples, ...figures } = result;
    writeFileSync(values.json, JSON.stringify({ ...figures, measured_at: new Date().toISOString() }, null, 1) + "\n");
  }
}
