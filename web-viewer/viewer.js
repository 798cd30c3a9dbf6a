// The fieldcast viewer page: plays the stream as soon as it opens, says what is happening in
// words, and reconnects by itself. Plain JS modules, no dependencies, no build step.
import { WhepSession, WhepError, retryDelayMs } from "./whep.js";
import { summarise, overlayLines } from "./stats.js";

const $ = (id) => document.getElementById(id);
const video = $("video");
const token = new URLSearchParams(location.search).get("token") || undefined;

const STATE_WORDS = {
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  offline: "stream offline",
  unplayable: "cannot play",
};
/** No new frame for this long on a connected session: the stream is stuck, start again. */
const STALL_MS = 5000;
/** A session that shows no picture this long after it started is abandoned. */
const FIRST_FRAME_TIMEOUT_MS = 10000;
/** This much video arrived without one decoded frame: the browser cannot decode it. */
const UNDECODED_BYTES = 200000;

const NO_H264 =
  "This browser cannot decode H.264 video, which this stream uses. " +
  "Firefox fetches its OpenH264 plugin by itself once it is online (see Add-ons and themes → " +
  "Plugins, then reload); offline, or with that plugin turned off, use Chrome, Edge or Safari.";

// What the page knows; also exposed for tests and for curious people in the console.
const view = {
  state: "connecting",
  pc: null,
  sessionUrl: null,
  overflowUrl: null, // where the device sent this viewer when it was full (307)
  firstFrameMs: null, // since navigation started
  offerToFirstFrameMs: null, // since the first WHEP POST was sent
  reconnects: 0,
  summary: null,
  healthy: null,
  viewerCount: null,
};
window.fieldcast = view;

let current = null; // { pc, session, stream, startedAt, framesDecoded, progressAt, sawFrame }
let attempt = 0;
let retryTimer = null;
let disconnectTimer = null;
let previousReport = null;

function setState(state, notice) {
  view.state = state;
  const line = $("state");
  line.dataset.state = state;
  // A viewer the full device redirected watches from the overflow engine: say so.
  const via = state === "live" && view.overflowUrl ? ` · via ${new URL(view.overflowUrl).host}` : "";
  line.textContent = STATE_WORDS[state] + via;
  $("live").hidden = state !== "live";
  showNotice(notice);
}

function showNotice(text, link) {
  const notice = $("notice");
  notice.hidden = !text;
  notice.textContent = text || "";
  if (text && link) {
    const a = document.createElement("a");
    a.href = link;
    a.textContent = link;
    a.rel = "noopener";
    notice.append(" ", a);
  }
}

function canDecodeH264() {
  const capabilities = window.RTCRtpReceiver?.getCapabilities?.("video");
  if (!capabilities) return true; // The browser does not say; try.
  return capabilities.codecs.some((c) => c.mimeType.toLowerCase() === "video/h264");
}

/** Ask the browser to play out as soon as it can decode (Chromium: jitterBufferTarget). */
function lowestLatency(receiver) {
  try {
    if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = 0;
    else if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = 0;
  } catch {
    // An older browser without either keeps its default buffer.
  }
}

function teardown() {
  clearTimeout(disconnectTimer);
  if (!current) return;
  const { pc, session } = current;
  current = null;
  session.close();
  pc.close();
  previousReport = null;
}

async function connect() {
  teardown();
  const session = new WhepSession("/whep", token);
  const iceServers = await session.iceServers();
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  const stream = new MediaStream();
  const mine = { pc, session, stream, startedAt: performance.now(), framesDecoded: 0, progressAt: 0, sawFrame: false };
  current = mine;
  view.pc = pc;

  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    lowestLatency(event.receiver);
  };
  pc.onicecandidate = (event) => session.trickle(event.candidate);
  pc.onconnectionstatechange = () => connectionChanged(mine);

  await pc.setLocalDescription(await pc.createOffer());
  mine.offeredAt = performance.now();
  const answer = await session.offer(pc.localDescription.sdp);
  if (current !== mine) {
    session.close();
    return;
  }
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  view.sessionUrl = session.url;
  view.overflowUrl = session.redirectedTo;
  video.srcObject = stream;
  watchFirstFrame(mine);
  soundAvailable(pc.getTransceivers().some((t) => t.receiver.track.kind === "audio" && t.currentDirection === "recvonly"));
  play();
}

function watchFirstFrame(mine) {
  const shown = () => {
    if (current !== mine || mine.sawFrame) return;
    mine.sawFrame = true;
    mine.progressAt = performance.now();
    if (view.firstFrameMs === null) {
      view.firstFrameMs = performance.now();
      view.offerToFirstFrameMs = view.firstFrameMs - mine.offeredAt;
    }
    attempt = 0;
    setState("live");
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(shown);
  else video.addEventListener("playing", shown, { once: true });
}

function connectionChanged(mine) {
  if (current !== mine) return;
  const state = mine.pc.connectionState;
  clearTimeout(disconnectTimer);
  if (state === "failed" || state === "closed") reconnect();
  // "disconnected" often heals by itself within a second or two; give it that long.
  if (state === "disconnected") disconnectTimer = setTimeout(() => current === mine && reconnect(), 2000);
}

/** Start again after a pause that grows with each failed attempt, up to 5 s. */
function reconnect(error) {
  if (retryTimer) return;
  teardown();
  const unreachable = error instanceof TypeError; // fetch could not reach the daemon at all
  const offline = unreachable || error?.status === 503 || view.healthy === false || attempt >= 3;
  const wait = error?.retryAfterSeconds ? error.retryAfterSeconds * 1000 : retryDelayMs(attempt);
  attempt += 1;
  view.reconnects += 1;
  const why = error instanceof WhepError ? `${error.message}. Trying again in ${Math.round(wait / 1000)} s.` : null;
  setState(offline ? "offline" : "reconnecting", why);
  // Full here, with the stream also elsewhere: say where, and keep trying for a seat here.
  if (error?.alternate) showNotice(`This device is full. Watch at`, error.alternate);
  retryTimer = setTimeout(() => {
    retryTimer = null;
    start();
  }, wait);
}

async function start() {
  if (!canDecodeH264()) {
    setState("unplayable", NO_H264);
    return;
  }
  if (view.state !== "offline" && view.state !== "reconnecting") setState("connecting");
  try {
    await connect();
  } catch (error) {
    if (error instanceof WhepError && !error.retryable) {
      teardown();
      const hint = error.status === 401 || error.status === 403 ? " Ask for a new link." : "";
      // The browser listed H.264 but offered it in a form the server cannot send.
      const why = /H\.264/.test(error.message) ? `${NO_H264} (${error.message})` : `${error.message}.${hint}`;
      setState("unplayable", why);
      return;
    }
    reconnect(error);
  }
}

/** Once a second: is the picture moving, and what the stats overlay shows. */
async function tick() {
  const mine = current;
  if (!mine) return;
  const report = await mine.pc.getStats().catch(() => null);
  if (!report || current !== mine) return;
  const summary = summarise(report, previousReport);
  previousReport = report;
  view.summary = summary;
  const now = performance.now();
  if (summary.framesDecoded > mine.framesDecoded) {
    mine.framesDecoded = summary.framesDecoded;
    mine.progressAt = now;
    if (mine.sawFrame && view.state !== "live") setState("live");
  }
  if (!$("stats").hidden) $("stats").textContent = overlayLines(summary, view.firstFrameMs).join("\n");

  if (!mine.sawFrame && summary.framesDecoded === 0 && summary.bytesReceived > UNDECODED_BYTES) {
    teardown();
    setState("unplayable", `Video arrives but this browser decodes none of it. ${NO_H264}`);
    return;
  }
  const stalled = mine.sawFrame && now - mine.progressAt > STALL_MS;
  const neverStarted = !mine.sawFrame && now - mine.startedAt > FIRST_FRAME_TIMEOUT_MS;
  if (stalled && view.healthy === false) {
    // The camera side has stopped; the session stays and picks up when frames return.
    if (view.state !== "offline") setState("offline", "The camera has stopped sending; waiting for it.");
  } else if (stalled || neverStarted) {
    reconnect();
  }
}

/** The title, once: it does not change while the page is open. */
async function loadTitle() {
  try {
    const response = await fetch("/api/status");
    if (!response.ok) return;
    const status = await response.json();
    if (status.title) {
      $("title").textContent = status.title;
      document.title = `${status.title} · live`;
    }
  } catch {
    // The events below say when the daemon is unreachable.
  }
}

// Live or offline and how many watch, pushed by the daemon when they change (Server-Sent
// Events) instead of polled. A hidden tab lets go of its stream: browsers allow only a few
// open connections per server, and a background tab needs no count.
let events = null;

function applySummary(summary) {
  view.healthy = summary.live;
  view.viewerCount = summary.viewer_count;
  const viewers = $("viewers");
  viewers.hidden = false;
  viewers.textContent = `${summary.viewer_count} watching`;
}

function listen() {
  if (events || !window.EventSource) return;
  events = new EventSource("/api/events");
  events.addEventListener("summary", (message) => {
    try {
      applySummary(JSON.parse(message.data));
    } catch {
      // A malformed event changes nothing.
    }
  });
  events.addEventListener("error", () => {
    // The browser reconnects by itself; until then the count is unknown.
    view.healthy = null;
    $("viewers").hidden = true;
  });
}

function stopListening() {
  events?.close();
  events = null;
}

document.addEventListener("visibilitychange", () => (document.hidden ? stopListening() : listen()));

// --- Sound: browsers only start muted playback by themselves; sound needs a tap. ---

function soundAvailable(available) {
  const button = $("sound");
  button.disabled = !available;
  if (!available) button.textContent = "No sound";
  updateSound();
}

function updateSound() {
  const button = $("sound");
  const available = !button.disabled;
  if (available) {
    button.textContent = video.muted ? "Sound off" : "Sound on";
    button.setAttribute("aria-pressed", String(!video.muted));
  }
  $("unmute").hidden = !(available && video.muted);
}

function play() {
  video.play().catch(() => {
    // Even muted autoplay was refused (a data saver, a strict setting): ask for a tap.
    const button = $("unmute");
    button.textContent = "Tap to play";
    button.hidden = false;
  });
}

function toggleSound() {
  if (!$("sound").disabled) video.muted = !video.muted;
  $("unmute").textContent = "Tap for sound";
  play();
  updateSound();
}

// --- Fullscreen, picture in picture, stats, share. ---

function toggleFullscreen() {
  const stage = $("stage");
  if (document.fullscreenElement) document.exitFullscreen();
  else if (stage.requestFullscreen) stage.requestFullscreen().catch(() => {});
  else if (video.webkitEnterFullscreen) video.webkitEnterFullscreen(); // iPhone Safari
}

function togglePictureInPicture() {
  if (document.pictureInPictureElement) document.exitPictureInPicture();
  else video.requestPictureInPicture().catch(() => {});
}

function toggleStats() {
  const stats = $("stats");
  stats.hidden = !stats.hidden;
  $("stats-button").setAttribute("aria-pressed", String(!stats.hidden));
  if (!stats.hidden) stats.textContent = overlayLines(view.summary || summarise(new Map(), null), view.firstFrameMs).join("\n");
}

function shareLink() {
  const link = new URL(location.pathname, location.origin);
  if (token) link.searchParams.set("token", token);
  return link.href;
}

function openShare() {
  const link = shareLink();
  $("share-link").href = link;
  $("share-link").textContent = link;
  $("share-qr").src = `/share.svg?url=${encodeURIComponent(link)}`;
  $("share-copy").textContent = "Copy link";
  $("share").showModal();
}

async function copyLink() {
  const link = shareLink();
  try {
    await navigator.clipboard.writeText(link);
  } catch {
    // Plain-HTTP pages have no clipboard API: select the link so Ctrl+C or a long press copies it.
    const range = document.createRange();
    range.selectNodeContents($("share-link"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand?.("copy");
  }
  $("share-copy").textContent = "Copied";
}

function wireControls() {
  $("sound").addEventListener("click", toggleSound);
  $("unmute").addEventListener("click", toggleSound);
  video.addEventListener("volumechange", updateSound);
  $("fullscreen").addEventListener("click", toggleFullscreen);
  $("fullscreen").hidden = !($("stage").requestFullscreen || video.webkitEnterFullscreen);
  $("pip").hidden = !(document.pictureInPictureEnabled && video.requestPictureInPicture);
  $("pip").addEventListener("click", togglePictureInPicture);
  $("stats-button").addEventListener("click", toggleStats);
  $("share-button").addEventListener("click", openShare);
  $("share-copy").addEventListener("click", copyLink);
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest?.("dialog")) return;
    const action = { s: toggleStats, f: toggleFullscreen, m: toggleSound }[event.key.toLowerCase()];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  // Leaving the page ends the session at once instead of after the server's timeout.
  window.addEventListener("pagehide", teardown);
  // Back from the browser's page cache: the old session is gone, start a new one.
  window.addEventListener("pageshow", (event) => event.persisted && start());
}

wireControls();
setState("connecting");
loadTitle();
if (!document.hidden) listen();
setInterval(tick, 1000);
start();
