// Headless Chromium playing fieldcast's own viewer page inside a network namespace, measuring
// how smoothly it plays: from a second after the first decoded frame, for a fixed window, the frames it
// decoded and the freezes Chromium itself counted (inbound-rtp freezeCount and
// totalFreezesDuration), plus the NACKs and PLIs it sent and the retransmissions it got.
// Prints JSON. Run by tests/loss/run.py.
import { launchChromium } from "../browser/fieldcast.mjs";

const base = process.argv[2];
const seconds = Number(process.argv[3] || 20);
// Inside its own network namespace, as a browser in the field: host candidates as mDNS names.
const { browser } = await launchChromium({ mdns: true });
try {
  const page = await browser.newPage();
  // Every peer connection's ICE events, for the report of a viewer that never played.
  await page.addInitScript(() => {
    const log = (window.__iceLog = []);
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = function (...args) {
      const pc = new Native(...args);
      const id = log.filter((e) => e.startsWith("pc ")).length;
      const at = () => Math.round(performance.now());
      log.push(`pc ${id} created at ${at()}`);
      pc.addEventListener("icecandidate", (e) => log.push(`${id} ${at()} candidate ${e.candidate?.candidate || "(end)"}`));
      pc.addEventListener("icegatheringstatechange", () => log.push(`${id} ${at()} gathering ${pc.iceGatheringState}`));
      pc.addEventListener("iceconnectionstatechange", () => log.push(`${id} ${at()} ice ${pc.iceConnectionState}`));
      pc.addEventListener("signalingstatechange", () => log.push(`${id} ${at()} signaling ${pc.signalingState}`));
      return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  });
  await page.goto(base + "/");
  const result = await page.evaluate(async ({ seconds }) => {
    const inbound = async () => {
      const pc = window.fieldcast?.pc;
      if (!pc) return null;
      let video = null;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") video = s;
      });
      return video;
    };
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    // What ICE did, for a viewer that never played: its state, candidates and checks.
    const iceReport = async () => {
      const pc = window.fieldcast?.pc;
      if (!pc) return { page_state: window.fieldcast?.state, pc: null };
      const report = { page_state: window.fieldcast?.state, ice: pc.iceConnectionState, events: window.__iceLog, local: [], remote: [], pairs: [] };
      (await pc.getStats()).forEach((s) => {
        if (s.type === "local-candidate" || s.type === "remote-candidate") {
          report[s.type === "local-candidate" ? "local" : "remote"].push(`${s.candidateType} ${s.address}:${s.port}`);
        } else if (s.type === "candidate-pair") {
          report.pairs.push({ state: s.state, sent: s.requestsSent, responses: s.responsesReceived, received: s.requestsReceived });
        }
      });
      return report;
    };
    const deadline = performance.now() + 20000;
    let start = await inbound();
    while (!(start?.framesDecoded > 0)) {
      if (performance.now() > deadline) return { frames: 0, error: "no frame decoded within 20 s", ice: await iceReport() };
      await sleep(50);
      start = await inbound();
    }
    // The test turns the loss on once the device sees this viewer playing.
    await sleep(1000);
    start = await inbound();
    await sleep(seconds * 1000);
    const end = await inbound();
    const delta = (key) => (end[key] || 0) - (start[key] || 0);
    const sdp = window.fieldcast.pc.remoteDescription?.sdp || "";
    return {
      answer_has_rtx: sdp.includes("rtx/90000") && sdp.includes("ssrc-group:FID"),
      frames: delta("framesDecoded"),
      seconds,
      fps: Math.round((delta("framesDecoded") / seconds) * 10) / 10,
      freezes: delta("freezeCount"),
      freeze_s: Math.round(delta("totalFreezesDuration") * 100) / 100,
      packets_lost: delta("packetsLost"),
      nacks: delta("nackCount"),
      plis: delta("pliCount"),
      retransmitted_packets: delta("retransmittedPacketsReceived"),
      page_state: window.fieldcast.state,
      reconnects: window.fieldcast.reconnects,
    };
  }, { seconds });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
