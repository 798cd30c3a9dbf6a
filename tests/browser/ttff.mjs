// Time to first frame in Chromium: opens the viewer page 10 times, each in a fresh browser
// context, and prints when the first frame was shown, counted from the start of navigation.
// A benchmark, not a test: `node tests/browser/ttff.mjs [loads]`.
import { startFieldcast, launchChromium, waitLive } from "./fieldcast.mjs";

const loads = Number(process.argv[2] || 10);
const fieldcast = await startFieldcast({ args: ["--audio", "none"] });
const chromium = await launchChromium();
const times = []; // [since navigation start, since the POST], ms
try {
  for (let i = 0; i < loads; i += 1) {
    const context = await chromium.browser.newContext();
    const page = await context.newPage();
    await page.goto(fieldcast.base + "/");
    await waitLive(page);
    times.push(await page.evaluate(() => [window.fieldcast.firstFrameMs, window.fieldcast.offerToFirstFrameMs]));
    await context.close();
    // Let the daemon see the viewer leave before the next one joins.
    await new Promise((r) => setTimeout(r, 500));
  }
} finally {
  await chromium.close();
  await fieldcast.stop();
}
function report(what, values) {
  const sorted = [...values].sort((a, b) => a - b);
  const median = (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
  const p90 = sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))];
  console.log(`${what}, ${sorted.length} loads (ms): ${values.map(Math.round).join(" ")}`);
  console.log(
    `  median ${Math.round(median)}, min ${Math.round(sorted[0])}, p90 ${Math.round(p90)}, max ${Math.round(sorted.at(-1))}`,
  );
}
report("first frame after navigation start", times.map(([page]) => page));
report("first frame after the WHEP POST was sent", times.map(([, offer]) => offer));
