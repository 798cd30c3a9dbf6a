// The viewer page's protocol and stats logic, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseIceServerLinks, candidateFragment, iceCredentials, retryDelayMs, WhepError, alternateLink } from "../../web-viewer/whep.js";
import { summarise, overlayLines } from "../../web-viewer/stats.js";

test("ICE servers from Link headers, with TURN credentials", () => {
  const header =
    '<stun:stun.example.net:3478>; rel="ice-server", ' +
    '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="1764050000:viewer"; credential="a,b=c"; credential-type="password", ' +
    '</whep/next>; rel="next"';
  assert.deepEqual(parseIceServerLinks(header), [
    { urls: "stun:stun.example.net:3478" },
    { urls: "turn:turn.example.net:3478?transport=udp", username: "1764050000:viewer", credential: "a,b=c" },
  ]);
  assert.deepEqual(parseIceServerLinks(null), []);
  assert.deepEqual(parseIceServerLinks("garbage"), []);
});

test("trickled candidates are grouped under their media section, with the ICE credentials", () => {
  const body = candidateFragment(
    [
      { sdpMid: "0", candidate: "candidate:1 1 udp 2122260223 192.168.1.5 50000 typ host" },
      { sdpMid: "0", candidate: "candidate:2 1 udp 1686052607 203.0.113.7 50000 typ srflx raddr 192.168.1.5 rport 50000" },
      { sdpMid: "1", candidate: "candidate:3 1 udp 2122260223 192.168.1.5 50001 typ host" },
    ],
    "abcd",
    "secret",
  );
  assert.equal(
    body,
    "a=ice-ufrag:abcd\r\na=ice-pwd:secret\r\na=mid:0\r\n" +
      "a=candidate:1 1 udp 2122260223 192.168.1.5 50000 typ host\r\n" +
      "a=candidate:2 1 udp 1686052607 203.0.113.7 50000 typ srflx raddr 192.168.1.5 rport 50000\r\n" +
      "a=mid:1\r\na=candidate:3 1 udp 2122260223 192.168.1.5 50001 typ host\r\n",
  );
  assert.deepEqual(iceCredentials("v=0\r\na=ice-ufrag:xy\r\na=ice-pwd:zz\r\n"), { ufrag: "xy", pwd: "zz" });
  assert.equal(iceCredentials("v=0\r\n"), null);
});

test("reconnect waits double each time, never more than 5 s", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 10].map(retryDelayMs), [500, 1000, 2000, 4000, 5000, 5000]);
});

test("only errors that can get better are retried", () => {
  assert.equal(new WhepError(503, "full").retryable, true);
  assert.equal(new WhepError(429, "slow down").retryable, true);
  assert.equal(new WhepError(500, "oops").retryable, true);
  assert.equal(new WhepError(400, "no H.264").retryable, false);
  assert.equal(new WhepError(401, "token").retryable, false);
});

function report(entries) {
  return new Map(entries.map((s) => [s.id, s]));
}

test("stats: rates over the interval, the selected pair, the codec", () => {
  const common = [
    { id: "T", type: "transport", selectedCandidatePairId: "P" },
    { id: "P", type: "candidate-pair", localCandidateId: "L", remoteCandidateId: "R", currentRoundTripTime: 0.0123 },
    { id: "L", type: "local-candidate", candidateType: "srflx", protocol: "udp" },
    { id: "R", type: "remote-candidate", candidateType: "host", protocol: "udp" },
    { id: "C", type: "codec", mimeType: "video/H264" },
  ];
  const inbound = (t, bytes, frames, packets, lost, delay, emitted) => ({
    id: "V", type: "inbound-rtp", kind: "video", codecId: "C", timestamp: t, bytesReceived: bytes,
    framesDecoded: frames, packetsReceived: packets, packetsLost: lost, frameWidth: 1280, frameHeight: 720,
    framesPerSecond: 30, jitterBufferDelay: delay, jitterBufferEmittedCount: emitted,
  });
  const before = report([...common, inbound(1000, 100000, 30, 200, 0, 1.0, 30)]);
  const now = report([...common, inbound(2000, 350000, 60, 396, 4, 1.6, 60)]);
  const s = summarise(now, before);
  assert.equal(s.resolution, "1280x720");
  assert.equal(s.fps, 30);
  assert.equal(s.bitrateKbps, 2000);
  assert.equal(s.lossPercent, 2);
  assert.equal(s.packetsLost, 4);
  assert.equal(s.rttMs, 12.3);
  assert.equal(s.jitterBufferMs, 20);
  assert.equal(s.codec, "H264");
  assert.equal(s.candidatePair, "srflx -> host (udp)");
  const lines = overlayLines(s, 412.7);
  assert.ok(lines.includes("first frame  413 ms"), lines.join("\n"));
});

test("stats before anything arrived are unknown, not zero", () => {
  const s = summarise(new Map(), null);
  assert.equal(s.resolution, null);
  assert.equal(s.bitrateKbps, null);
  assert.ok(overlayLines(s, null).every((line) => line.includes("–")));
});

test("a full device's alternate player page is read from its Link header", () => {
  assert.equal(alternateLink('<https://youtube.example/live>; rel="alternate"'), "https://youtube.example/live");
  assert.equal(
    alternateLink('<stun:x.example>; rel="ice-server", <https://player.example/>; rel=alternate'),
    "https://player.example/",
  );
  assert.equal(alternateLink('<javascript:alert(1)>; rel="alternate"'), null, "only http(s) links");
  assert.equal(alternateLink('<https://x.example/>; rel="help"'), null);
  assert.equal(alternateLink(null), null);
});
