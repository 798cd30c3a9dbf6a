// Reads the capture stamp — the wall-clock time the `test` pipeline drew along the bottom of
// each frame as 40 black/white blocks (layout in src/media/capture_stamp.rs) — back from the
// picture a page shows, at every requestVideoFrameCallback, for glass-to-glass latency.

// Self-contained, so the same code runs in node (unit tests) and in the page (as its source).
function stampCodec() {
  const BLOCKS = 40;
  const START = [1, 0, 1, 0];
  const VALUE_BITS = 28;
  const SPAN = 2 ** VALUE_BITS;
  const MID_GREY = 128;

  function crc8(value) {
    let crc = 0;
    for (const byte of [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255]) {
      crc ^= byte;
      for (let i = 0; i < 8; i += 1) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 255 : (crc << 1) & 255;
    }
    return crc;
  }

  /** The stamped value from 40 bits (0/1, left to right), or null if it is not a stamp. */
  function decodeBits(bits) {
    if (bits.length !== BLOCKS || START.some((b, i) => bits[i] !== b)) return null;
    let value = 0;
    for (let i = START.length; i < START.length + VALUE_BITS; i += 1) value = value * 2 + bits[i];
    let crc = 0;
    for (let i = START.length + VALUE_BITS; i < BLOCKS; i += 1) crc = crc * 2 + bits[i];
    return crc8(value) === crc ? value : null;
  }

  /** The bits for wall-clock time `unixMs`, as fieldcast draws them (for tests). */
  function encodeBits(unixMs) {
    const value = unixMs % SPAN;
    const bits = [...START];
    for (let i = VALUE_BITS - 1; i >= 0; i -= 1) bits.push(Math.floor(value / 2 ** i) % 2);
    const crc = crc8(value);
    for (let i = 7; i >= 0; i -= 1) bits.push((crc >> i) & 1);
    return bits;
  }

  /**
   * The stamped value from RGBA pixels of the bottom strip of a frame `width` wide (the strip
   * is `width / 40` rows high): each block's centre quarter averaged, thresholded at mid grey.
   */
  function decodeStrip(rgba, width) {
    const side = Math.floor(width / BLOCKS);
    if (side < 4) return null;
    const patch = Math.max(1, side >> 2);
    const bits = [];
    for (let block = 0; block < BLOCKS; block += 1) {
      const x0 = block * side + ((side - patch) >> 1);
      const y0 = (side - patch) >> 1;
      let sum = 0;
      for (let y = y0; y < y0 + patch; y += 1) {
        for (let x = x0; x < x0 + patch; x += 1) {
          const i = (y * width + x) * 4;
          sum += 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
        }
      }
      bits.push(sum / (patch * patch) > MID_GREY ? 1 : 0);
    }
    return decodeBits(bits);
  }

  /** Milliseconds from stamped `value` to wall-clock `unixMs`, across the wrap of the low bits. */
  function elapsedMs(value, unixMs) {
    const diff = (((unixMs - value) % SPAN) + SPAN) % SPAN;
    return diff >= SPAN / 2 ? diff - SPAN : diff;
  }

  return { BLOCKS, SPAN, decodeBits, encodeBits, decodeStrip, elapsedMs };
}

export const codec = stampCodec();

/**
 * Starts reading stamps in `page` (its <video> already playing). Every frame the page shows
 * adds one sample: [shown (Unix ms), capture → shown, capture → received, RTP time (ms,
 * unwrapped)], or counts as unreadable. "Shown" is the frame's expectedDisplayTime (when the
 * compositor expects it on screen), turned into wall-clock time through Date.now() at the
 * callback, so the performance clock drifting from the wall clock over a long run does not
 * leak in. The picture drawn in the callback is now and then a newer frame than the one the
 * metadata describes; `alignToDescribedFrames` corrects those with the RTP time.
 */
export async function startReading(page) {
  await page.evaluate(`window.captureStamp = (${stampCodec.toString()})();`);
  await page.evaluate(() => {
    const video = document.querySelector("video");
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const log = { samples: [], unreadable: 0, frames: 0, lastPresented: null, skipped: 0 };
    let rtpMs = null;
    let lastRtp = null;
    window.stampLog = log;
    const onFrame = (now, meta) => {
      const wallNow = Date.now();
      const perfNow = performance.now();
      video.requestVideoFrameCallback(onFrame);
      log.frames += 1;
      if (log.lastPresented !== null && meta.presentedFrames > log.lastPresented + 1) {
        log.skipped += meta.presentedFrames - log.lastPresented - 1;
      }
      log.lastPresented = meta.presentedFrames;
      if (meta.rtpTimestamp !== undefined) {
        // 90 kHz, 32 bits: unwrapped by signed steps from the previous frame.
        rtpMs = lastRtp === null ? 0 : rtpMs + (((meta.rtpTimestamp - lastRtp) | 0) / 90);
        lastRtp = meta.rtpTimestamp;
      }
      const width = video.videoWidth;
      const side = Math.floor(width / window.captureStamp.BLOCKS);
      if (side < 4) {
        log.unreadable += 1;
        return;
      }
      if (canvas.width !== width || canvas.height !== side) {
        canvas.width = width;
        canvas.height = side;
      }
      context.drawImage(video, 0, video.videoHeight - side, width, side, 0, 0, width, side);
      const value = window.captureStamp.decodeStrip(context.getImageData(0, 0, width, side).data, width);
      if (value === null) {
        log.unreadable += 1;
        return;
      }
      const toWall = (t) => wallNow - (perfNow - t);
      const shown = toWall(meta.expectedDisplayTime);
      const received = meta.receiveTime === undefined ? null : toWall(meta.receiveTime);
      log.samples.push([
        shown,
        window.captureStamp.elapsedMs(value, shown),
        received === null ? null : window.captureStamp.elapsedMs(value, received),
        rtpMs,
      ]);
    };
    video.requestVideoFrameCallback(onFrame);
  });
}

/** Takes what the page measured since the last call: samples and counts. */
export async function drain(page) {
  return page.evaluate(() => {
    const log = window.stampLog;
    const taken = { samples: log.samples, unreadable: log.unreadable, frames: log.frames, skipped: log.skipped };
    log.samples = [];
    log.unreadable = 0;
    log.frames = 0;
    log.skipped = 0;
    return taken;
  });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[sorted.length >> 1] : null;
};

/** Neighbours on each side whose median is the reference for a frame's RTP-to-stamp skew. */
const SKEW_NEIGHBOURS = 15;
/** Frames a picture may be drawn ahead of its metadata and still be corrected. */
const MAX_AHEAD = 3;

/**
 * Samples as `startReading` took them, each counted against the frame its metadata describes.
 * RTP time minus stamp (the skew) barely changes from frame to frame, as both come from the
 * capture clock, except where the picture drawn was `k` frames newer: there it is `k` frame
 * intervals less than its neighbours'. Those are corrected; anything else (a starved source
 * shifts the skew for a while) is left as measured. Returns [shown, capture → shown,
 * capture → received] and how many were corrected.
 */
export function alignToDescribedFrames(samples) {
  const hasRtp = (s) => s[3] !== null && s[3] !== undefined;
  const withRtp = samples.filter(hasRtp);
  const steps = withRtp.slice(1).map((s, i) => s[3] - withRtp[i][3]).filter((d) => d > 0);
  const frameMs = median(steps);
  const skew = (s) => s[1] - s[0] + s[3]; // RTP time − stamp, plus a constant
  const skews = samples.map((s) => (hasRtp(s) ? skew(s) : null));
  let corrected = 0;
  const aligned = samples.map((s, i) => {
    if (!hasRtp(s) || !frameMs) return [s[0], s[1], s[2]];
    const around = skews.slice(Math.max(0, i - SKEW_NEIGHBOURS), i + SKEW_NEIGHBOURS + 1).filter((v) => v !== null);
    const offset = (skews[i] - median(around)) / frameMs;
    const k = Math.round(offset);
    // Only whole frames ahead (a newer picture has a later stamp, so a smaller skew).
    if (k >= 0 || k < -MAX_AHEAD || Math.abs(offset - k) > 0.25) return [s[0], s[1], s[2]];
    corrected += 1;
    return [s[0], s[1] - k * frameMs, s[2] === null ? null : s[2] - k * frameMs];
  });
  return { samples: aligned, corrected };
}

/** p50 / p95 / max (and min, count) of a list of numbers; nulls when empty. */
export function summarise(values) {
  const sorted = values.filter((v) => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  const at = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);
  return { count: sorted.length, min: at(0), p50: at(0.5), p95: at(0.95), max: sorted.length ? sorted.at(-1) : null };
}
