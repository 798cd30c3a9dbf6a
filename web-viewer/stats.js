// What the stats overlay shows, computed from two getStats() reports a moment apart.
// No IO and no DOM, so it is unit-tested with plain objects.

function byType(report, type) {
  const found = [];
  report.forEach((s) => {
    if (s.type === type) found.push(s);
  });
  return found;
}

function inboundVideo(report) {
  return byType(report, "inbound-rtp").find((s) => (s.kind || s.mediaType) === "video");
}

/** The candidate pair carrying media: the transport's selected one, else the nominated one. */
export function selectedPair(report) {
  for (const transport of byType(report, "transport")) {
    const pair = transport.selectedCandidatePairId && report.get(transport.selectedCandidatePairId);
    if (pair) return pair;
  }
  return byType(report, "candidate-pair").find((p) => p.nominated && p.state === "succeeded");
}

/** "host -> srflx (udp)": our candidate type, theirs, and the protocol. */
export function pairDescription(report, pair) {
  if (!pair) return null;
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  if (!local || !remote) return null;
  const protocol = local.relayProtocol ? `${local.protocol} via TURN/${local.relayProtocol}` : local.protocol;
  return `${local.candidateType} -> ${remote.candidateType} (${protocol})`;
}

const round = (value, digits = 0) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : null);

/**
 * A summary of the video as received: `now` and `before` are stats reports (Maps of stats
 * objects), `before` may be null on the first call. Fields are null when not known yet.
 */
export function summarise(now, before) {
  const video = inboundVideo(now);
  const previous = before && video ? before.get(video.id) : null;
  const seconds = previous ? (video.timestamp - previous.timestamp) / 1000 : 0;
  const pair = selectedPair(now);
  const codec = video && video.codecId ? now.get(video.codecId) : null;

  const summary = {
    resolution: video && video.frameWidth ? `${video.frameWidth}x${video.frameHeight}` : null,
    fps: video ? round(video.framesPerSecond, 1) : null,
    bitrateKbps: null,
    packetsLost: video ? video.packetsLost ?? null : null,
    lossPercent: null,
    rttMs: pair ? round(pair.currentRoundTripTime * 1000, 1) : null,
    jitterBufferMs: null,
    codec: codec ? codec.mimeType.replace(/^video\//, "") : null,
    candidatePair: pairDescription(now, pair),
    framesDecoded: video ? video.framesDecoded ?? 0 : 0,
    bytesReceived: video ? video.bytesReceived ?? 0 : 0,
  };
  if (video && previous && seconds > 0) {
    summary.bitrateKbps = round(((video.bytesReceived - previous.bytesReceived) * 8) / seconds / 1000);
    if (summary.fps === null) summary.fps = round((video.framesDecoded - previous.framesDecoded) / seconds, 1);
    const received = video.packetsReceived - previous.packetsReceived;
    const lost = (video.packetsLost ?? 0) - (previous.packetsLost ?? 0);
    if (received + lost > 0) summary.lossPercent = round((100 * Math.max(lost, 0)) / (received + lost), 1);
    const emitted = video.jitterBufferEmittedCount - previous.jitterBufferEmittedCount;
    const delay = video.jitterBufferDelay - previous.jitterBufferDelay;
    if (emitted > 0) summary.jitterBufferMs = round((delay / emitted) * 1000);
  }
  return summary;
}

/** The overlay's lines, with "–" for what is not known yet. */
export function overlayLines(summary, firstFrameMs) {
  const show = (value, unit = "") => (value === null || value === undefined ? "–" : `${value}${unit}`);
  return [
    `resolution   ${show(summary.resolution)}`,
    `frame rate   ${show(summary.fps, " fps")}`,
    `bitrate      ${show(summary.bitrateKbps, " kbit/s")}`,
    `packet loss  ${show(summary.lossPercent, " %")} (${show(summary.packetsLost)} lost)`,
    `round trip   ${show(summary.rttMs, " ms")}`,
    `jitter buf.  ${show(summary.jitterBufferMs, " ms")}`,
    `codec        ${show(summary.codec)}`,
    `path         ${show(summary.candidatePair)}`,
    `first frame  ${show(firstFrameMs === null ? null : Math.round(firstFrameMs), " ms")}`,
  ];
}
