// The page-side capture-stamp reader, without a browser: the same layout fieldcast draws.
import { test } from "node:test";
import assert from "node:assert/strict";
import { codec, summarise, alignToDescribedFrames } from "./capture_stamp.mjs";

const NOW = 1_796_342_400_123; // 2026-12-04 00:00:00.123 UTC

// A bottom strip `width` wide as RGBA: each block black or white, blurred at its edges.
function strip(bits, width, { low = 16, high = 235 } = {}) {
  const side = Math.floor(width / codec.BLOCKS);
  const rgba = new Uint8ClampedArray(width * side * 4);
  for (let y = 0; y < side; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const block = Math.min(codec.BLOCKS - 1, Math.floor(x / side));
      const edge = x % side < 3 || x % side >= side - 3;
      const luma = edge ? 128 : bits[block] ? high : low;
      rgba.set([luma, luma, luma, 255], (y * width + x) * 4);
    }
  }
  return rgba;
}

test("a stamp decodes to the low 28 bits of its time", () => {
  assert.equal(codec.decodeBits(codec.encodeBits(NOW)), NOW % codec.SPAN);
  assert.equal(codec.decodeBits(codec.encodeBits(0)), 0);
  assert.equal(codec.decodeBits(codec.encodeBits(codec.SPAN - 1)), codec.SPAN - 1);
});

test("the bits match what fieldcast draws (CRC-8 0x07 over the big-endian value)", () => {
  // Worked by hand: value 1 → CRC 0x07; start 1010, 27 zeros, 1, then 00000111.
  const bits = codec.encodeBits(1);
  assert.equal(bits.join(""), "1010" + "0".repeat(27) + "1" + "00000111");
});

test("any single flipped block is rejected", () => {
  const bits = codec.encodeBits(NOW);
  for (let i = 0; i < bits.length; i += 1) {
    const damaged = [...bits];
    damaged[i] = 1 - damaged[i];
    assert.equal(codec.decodeBits(damaged), null, `block ${i} flipped`);
  }
});

test("a blurred strip is read by its block centres", () => {
  const bits = codec.encodeBits(NOW);
  assert.equal(codec.decodeStrip(strip(bits, 1280), 1280), NOW % codec.SPAN);
  // Washed out by the encoder: still either side of mid grey.
  assert.equal(codec.decodeStrip(strip(bits, 640, { low: 90, high: 170 }), 640), NOW % codec.SPAN);
});

test("a picture without a stamp reads as none", () => {
  assert.equal(codec.decodeStrip(strip(new Array(40).fill(0), 1280), 1280), null);
  assert.equal(codec.decodeStrip(strip(new Array(40).fill(1), 1280), 1280), null);
  assert.equal(codec.decodeStrip(new Uint8ClampedArray(100 * 2 * 4), 100), null, "too narrow");
});

test("elapsed time crosses the wrap of the low bits, and a future stamp is negative", () => {
  assert.equal(codec.elapsedMs(codec.SPAN - 10, codec.SPAN * 7 + 30), 40);
  assert.equal(codec.elapsedMs(NOW % codec.SPAN, NOW - 5), -5);
  assert.equal(codec.elapsedMs(NOW % codec.SPAN, NOW + 250), 250);
});

test("summaries give p50, p95 and max, and nulls when empty", () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.deepEqual(summarise(values), { count: 100, min: 1, p50: 51, p95: 96, max: 100 });
  assert.deepEqual(summarise([null]), { count: 0, min: null, p50: null, p95: null, max: null });
});

test("a picture drawn a frame ahead of its metadata is counted against the frame described", () => {
  // 30 fps, every frame shown 50 ms after capture; the third drew the next frame's picture.
  const frame = 1000 / 30;
  const samples = [0, 1, 2, 3, 4].map((i) => [NOW + 50 + i * frame, 50, 10, i * frame]);
  samples[2] = [samples[2][0], 50 - frame, 10 - frame, samples[2][3]];
  const { samples: aligned, corrected } = alignToDescribedFrames(samples);
  assert.equal(corrected, 1);
  for (const [, latency, received] of aligned) {
    assert.ok(Math.abs(latency - 50) < 1e-6 && Math.abs(received - 10) < 1e-6, `${latency}, ${received}`);
  }
});

test("a skew that shifts for a while (a starved source) is left as measured", () => {
  const frame = 1000 / 30;
  const samples = Array.from({ length: 60 }, (_, i) => [NOW + 50 + i * frame, i < 30 ? 50 : 1050, 10, i * frame]);
  const { samples: aligned, corrected } = alignToDescribedFrames(samples);
  assert.equal(corrected, 0);
  assert.deepEqual(aligned.map((s) => s[1]), samples.map((s) => s[1]));
});

test("samples without RTP times are left as they are", () => {
  const { samples, corrected } = alignToDescribedFrames([[NOW, 40, null, null]]);
  assert.deepEqual(samples, [[NOW, 40, null]]);
  assert.equal(corrected, 0);
});
