// Headless Chromium opening fieldcast's own viewer page inside a network namespace: the page
// discovers the ICE servers (OPTIONS /whep, Link headers), trickles its candidates with
// PATCH and plays. Counts decoded frames, and prints the ICE pair it used as JSON.
// Run by tests/nat/run.py.
import { launchChromium } from "../browser/fieldcast.mjs";

const base = process.argv[2];
const wanted = Number(process.argv[3] || 30);
// Inside its own network namespace, as a browser in the field: host candidates as mDNS names.
const { browser } = await launchChromium({ mdns: true });
try {
  const page = await browser.newPage();
  await page.goto(base + "/");
  const result = await page.evaluate(async ({ wanted }) => {
    const started = performance.now();
    const deadline = started + 25000;
    const stats = async () => {
      const pc = window.fieldcast?.pc;
      if (!pc) return { frames: 0, pair: null };
      const report = await pc.getStats();
      let frames = 0;
      let pair = null;
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
        if (s.type === "transport" && s.selectedCandidatePairId) {
          const p = report.get(s.selectedCandidatePairId);
          const local = report.get(p.localCandidateId);
          const remote = report.get(p.remoteCandidateId);
          pair = [local.candidateType, remote.candidateType, local.relayProtocol || local.protocol];
        }
      });
      return { frames, pair };
    };
    let now = { frames: 0, pair: null };
    while (now.frames < wanted && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      now = await stats();
    }
    const links = (await fetch("/whep", { method: "OPTIONS" })).headers.get("link") || "";
    return {
      ice_servers: [...links.matchAll(/<([^>]+)>/g)].map((m) => m[1]),
      frames: now.frames,
      first_frame_ms: window.fieldcast.offerToFirstFrameMs === null ? null : Math.round(window.fieldcast.offerToFirstFrameMs),
      pair: now.pair,
      page_state: window.fieldcast.state,
      reconnects: window.fieldcast.reconnects,
    };
  }, { wanted });
  console.log(JSON.stringify(result));
  process.exitCode = result.frames >= wanted ? 0 : 1;
} finally {
  await browser.close();
}
