// fieldcast viewer: receive-only WHEP client. Plain JS, no dependencies, no build step.
"use strict";

const endpoint = "/whep";
const video = document.getElementById("video");
const stateLine = document.getElementById("state");
let sessionUrl = null;

function say(text) {
  stateLine.textContent = text;
}

async function watch() {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") say("live");
    if (pc.connectionState === "failed") say("connection failed");
  };
  const pending = [];
  pc.onicecandidate = (event) => {
    if (event.candidate && event.candidate.candidate) pending.push(event.candidate);
    if (sessionUrl) flushCandidates(pending);
  };

  await pc.setLocalDescription(await pc.createOffer());
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `server answered ${response.status}`);
  }
  sessionUrl = new URL(response.headers.get("Location"), location.href).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  flushCandidates(pending);
  window.fieldcast = { pc, sessionUrl };
}

function flushCandidates(pending) {
  if (!pending.length) return;
  const lines = pending.splice(0).map((c) => `a=mid:${c.sdpMid}\r\na=${c.candidate}\r\n`);
  fetch(sessionUrl, {
    method: "PATCH",
    headers: { "Content-Type": "application/trickle-ice-sdpfrag" },
    body: lines.join(""),
  }).catch(() => {});
}

window.addEventListener("pagehide", () => {
  if (sessionUrl) fetch(sessionUrl, { method: "DELETE", keepalive: true });
});

watch().catch((error) => say(`stream offline: ${error.message}`));
