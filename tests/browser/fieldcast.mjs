// Starts a real fieldcast binary on loopback and a headless Debian Chromium to watch it.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { before, after } from "node:test";

const here = new URL(".", import.meta.url).pathname;
export const binary = process.env.FIELDCAST_BIN || join(here, "../../target/release/fieldcast");
/** The admin token the test daemons keep in their state directory. */
export const ADMIN_TOKEN = "browser-test-admin-token";

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Waits until `probe` resolves truthy, or throws saying what never happened.
export async function waitFor(what, timeoutMs, probe) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms (last: ${last})`);
}

/**
 * Starts fieldcast on loopback. `port` reuses an address (to restart a daemon in place),
 * `args` adds flags, `config` is TOML written to a file given with --config, `pipeline` replaces
 * the test pipeline, and `beforeHealthy` runs once the daemon is started (to start a source).
 */
export async function startFieldcast({ port, args = [], config, pipeline = "test", beforeHealthy } = {}) {
  port = port || (await freePort());
  const base = `http://127.0.0.1:${port}`;
  const extra = [...args];
  const dir = mkdtempSync(join(tmpdir(), "fieldcast-browser-"));
  if (config) {
    writeFileSync(join(dir, "fieldcast.toml"), config);
    extra.push("--config", join(dir, "fieldcast.toml"));
  }
  // A state directory of its own, holding a known admin token (as one made at first start).
  writeFileSync(join(dir, "admin-token"), `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  extra.push("--state-dir", dir);
  const child = spawn(
    binary,
    ["run", "--listen", `127.0.0.1:${port}`, "--pipeline", pipeline, "--rtc-addr", "127.0.0.1:0", ...extra],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FIELDCAST_LOG: "info" } },
  );
  beforeHealthy?.();
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  try {
    await waitFor("fieldcast healthy", 15000, async () => (await fetch(`${base}/healthz`)).ok);
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`${error.message}\n--- fieldcast log ---\n${log}`);
  }
  return {
    base,
    pid: child.pid,
    port,
    log: () => log,
    /** Every detail (pipeline, stream counters, each viewer): the admin view. */
    status: async () => (await fetch(`${base}/api/admin/status`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json(),
    /** What anyone may see. */
    publicStatus: async () => (await fetch(`${base}/api/status`)).json(),
    stop: async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 6000))]);
      child.kill("SIGKILL");
    },
  };
}

/**
 * Headless Debian Chromium. `mdns` keeps the browser's default of naming its host candidates
 * with mDNS (as a browser in the field does); the loopback tests turn it off, so that real host
 * candidates are used and nothing is multicast off the machine.
 */
export async function launchChromium({ mdns = false } = {}) {
  // playwright gives every launch a fresh, empty profile of its own (--user-data-dir).
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...(mdns ? [] : ["--disable-features=WebRtcHideLocalIpsWithMdns"]),
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  return {
    browser,
    close: async () => {
      await browser.close();
    },
  };
}

// The browser's count of decoded video frames (inbound-rtp framesDecoded), 0 before any.
export async function framesDecoded(page) {
  return page.evaluate(async () => {
    let decoded = 0;
    (await window.fieldcast.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") decoded = s.framesDecoded ?? 0;
    });
    return decoded;
  });
}

// Counts decoded frames shown by the page's <video> over `ms` milliseconds.
export async function countFrames(page, ms) {
  return page.evaluate(
    (ms) =>
      new Promise((resolve) => {
        const video = document.querySelector("video");
        let frames = 0;
        const start = performance.now();
        const tick = () => {
          frames += 1;
          if (performance.now() - start < ms) video.requestVideoFrameCallback(tick);
          else resolve(frames);
        };
        video.requestVideoFrameCallback(tick);
        setTimeout(() => resolve(frames), ms + 1000);
      }),
    ms,
  );
}

// The negotiated video codec as the browser reports it.
export async function inboundCodec(page) {
  return page.evaluate(async () => {
    const stats = await window.fieldcast.pc.getStats();
    let codecId;
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") codecId = s.codecId;
    });
    return codecId ? stats.get(codecId).mimeType : null;
  });
}

// Waits until the page says it is live and its <video> has a frame to show.
export async function waitLive(page, timeoutMs = 10000) {
  await waitFor("the page showing its first frame and saying live", timeoutMs, () =>
    page.evaluate(
      () => window.fieldcast?.state === "live" && document.querySelector("video").readyState >= 2,
    ),
  );
}

// Luminance variance of the current picture, drawn small onto a canvas: near 0 when uniform.
export async function pictureVariance(page) {
  return page.evaluate(() => {
    const video = document.querySelector("video");
    const canvas = document.createElement("canvas");
    canvas.width = 160;
    canvas.height = 90;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    let sum = 0;
    let squares = 0;
    const n = data.length / 4;
    for (let i = 0; i < data.length; i += 4) {
      const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
      sum += y;
      squares += y * y;
    }
    const mean = sum / n;
    return squares / n - mean * mean;
  });
}

// The text the page shows for its connection state.
export async function stateWords(page) {
  return page.evaluate(() => document.getElementById("state").textContent);
}

/**
 * One daemon (`startFieldcast(options)`) and one browser for the tests of a file: started
 * before them, stopped after. Their handles are `rig.fieldcast` and `rig.chromium`.
 */
export function fieldcastWithBrowser(options) {
  const rig = {};
  before(async () => {
    rig.fieldcast = await startFieldcast(options);
    rig.chromium = await launchChromium();
  });
  after(async () => {
    await rig.chromium?.close();
    await rig.fieldcast?.stop();
  });
  return rig;
}
