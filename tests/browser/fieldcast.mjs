// Starts a real fieldcast binary on loopback and a headless Debian Chromium to watch it.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;
export const binary = process.env.FIELDCAST_BIN || join(here, "../../target/release/fieldcast");

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

export async function startFieldcast() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(
    binary,
    ["run", "--listen", `127.0.0.1:${port}`, "--pipeline", "test", "--rtc-addr", "127.0.0.1:0"],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FIELDCAST_LOG: "info" } },
  );
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
    log: () => log,
    status: async () => (await fetch(`${base}/api/status`)).json(),
    stop: async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 6000))]);
      child.kill("SIGKILL");
    },
  };
}

export async function launchChromium() {
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
      // Real host candidates instead of mDNS names, so nothing is multicast off the machine.
      "--disable-features=WebRtcHideLocalIpsWithMdns",
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
