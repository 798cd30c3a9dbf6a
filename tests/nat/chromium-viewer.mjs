// Headless Chromium as a WHEP viewer inside a network namespace: discovers the ICE servers
// from OPTIONS /whep (Link headers), joins, counts decoded frames, and prints the ICE pair
// it used as JSON. Run by tests/nat/run.py with NAT_CHROMIUM=1.
import { chromium } from "../browser/node_modules/playwright-core/index.mjs";

const base = process.argv[2];
const wanted = Number(process.argv[3] || 30);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const page = await browser.newPage();
  await page.goto(base + "/healthz");
  const result = await page.evaluate(async ({ wanted }) => {
    const links = (await fetch("/whep", { method: "OPTIONS" })).headers.get("link") || "";
    const iceServers = [...links.matchAll(/<([^>]+)>\s*;\s*rel="ice-server"([^,]*)/g)].map((m) => {
      const param = (name) => (m[2].match(new RegExp(`${name}="([^"]*)"`)) || [])[1];
      return { urls: m[1], username: param("username"), credential: param("credential") };
    });
    const pc = new RTCPeerConnection({ iceServers });
    pc.addTransceiver("video", { direction: "recvonly" });
    const video = document.createElement("video");
    video.muted = true;
    document.body.append(video);
    pc.ontrack = (event) => { video.srcObject = new MediaStream([event.track]); video.play(); };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
      setTimeout(resolve, 5000);
    });
    const posted = performance.now();
    const response = await fetch("/whep", {
      method: "POST", headers: { "content-type": "application/sdp" }, body: pc.localDescription.sdp,
    });
    const session = response.headers.get("location");
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    // Decoded frames as WebRTC counts them (a headless page may not paint every frame).
    const decoded = async () => {
      let n = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded || 0;
      });
      return n;
    };
    let frames = 0;
    let firstFrame = null;
    const deadline = performance.now() + 20000;
    while (frames < wanted && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      frames = await decoded();
      if (frames > 0) firstFrame ??= performance.now();
    }
    let pair = null;
    (await pc.getStats()).forEach((s, _, all) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const p = all.get(s.selectedCandidatePairId);
        const local = all.get(p.localCandidateId);
        const remote = all.get(p.remoteCandidateId);
        pair = [local.candidateType, remote.candidateType, local.relayProtocol || local.protocol];
      }
    });
    if (session) await fetch(session, { method: "DELETE" });
    pc.close();
    return {
      ice_servers: iceServers.map((s) => s.urls),
      frames,
      first_frame_ms: firstFrame === null ? null : Math.round(firstFrame - posted),
      pair,
    };
  }, { wanted });
  console.log(JSON.stringify(result));
  process.exitCode = result.frames >= wanted ? 0 : 1;
} finally {
  await browser.close();
}
