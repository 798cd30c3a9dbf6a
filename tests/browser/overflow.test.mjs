// A full device sends the next viewer to an overflow engine: with max_viewers = 2 and the
// overflow URL pointing at the test WHIP/WHEP server (aiortc, fed by fieldcast's own WHIP
// publish target), a third page is answered 307 and plays from the overflow server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ADMIN_TOKEN,
  startFieldcast,
  launchChromium,
  framesDecoded,
  waitFor,
  waitLive,
  stateWords,
} from "./fieldcast.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const python = process.env.TEST_PYTHON || join(here, "../../target/test-venv/bin/python");
const TOKEN = "overflow-test-token";

let fieldcast;
let chromium;
let server;
let serverLog = "";

async function freePort() {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

before(async () => {
  const port = await freePort();
  const overflow = `http://127.0.0.1:${port}`;
  server = spawn(python, [join(here, "../publish/whip_server.py"), "--port", String(port), "--token", TOKEN], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout.on("data", (d) => (serverLog += d));
  server.stderr.on("data", (d) => (serverLog += d));
  await waitFor("the overflow server answering", 15000, async () => (await fetch(`${overflow}/record`)).ok).catch(
    (error) => {
      throw new Error(`${error.message}\n${serverLog}`);
    },
  );
  fieldcast = await startFieldcast({
    args: ["--audio", "none"],
    config: `[limits]\nmax_viewers = 2\noverflow_url = "${overflow}/whep"\n` +
      `[[publish]]\nurl = "${overflow}/whip"\ntoken = "${TOKEN}"\nname = "overflow"\n`,
  });
  await waitFor("the publish target live", 15000, async () => (await fieldcast.status()).publish[0].state === "live");
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await fieldcast?.stop();
  server?.kill("SIGTERM");
});

test("the third viewer of a two-seat device is sent to the overflow engine and plays there", async () => {
  const pages = [];
  for (let i = 0; i < 2; i++) {
    const page = await chromium.browser.newPage();
    await page.goto(fieldcast.base + "/");
    await waitLive(page, 15000);
    pages.push(page);
  }
  const third = await chromium.browser.newPage();
  const redirects = [];
  third.on("request", (request) => {
    const from = request.redirectedFrom();
    if (from) redirects.push({ from: from.url(), to: request.url(), method: request.method() });
  });
  const statuses = [];
  third.on("response", (response) => statuses.push({ url: response.url(), status: response.status() }));
  await third.goto(fieldcast.base + "/");
  await waitLive(third, 20000).catch(async (error) => {
    throw new Error(`${error.message}; page says ${await stateWords(third)}; server log:\n${serverLog.slice(-2000)}`);
  });
  const before = await framesDecoded(third);
  await new Promise((r) => setTimeout(r, 2000));
  const decoded = (await framesDecoded(third)) - before;
  const words = await stateWords(third);
  console.log(`# third page: ${words}; ${decoded} frames decoded in 2 s; redirects ${JSON.stringify(redirects)}`);
  assert.ok(
    statuses.some((r) => r.url === `${fieldcast.base}/whep` && r.status === 307),
    `no 307 from fieldcast's /whep among ${JSON.stringify(statuses)}`,
  );
  assert.ok(
    redirects.some((r) => r.from === `${fieldcast.base}/whep` && r.to.endsWith("/whep") && r.method === "POST"),
    `the POST was not repeated at the overflow URL: ${JSON.stringify(redirects)}`,
  );
  assert.ok(decoded >= 10, `the overflow viewer decoded only ${decoded} frames in 2 s`);
  assert.match(words, /via 127\.0\.0\.1:\d+/, "the page does not say it plays from the overflow engine");
  const status = await fieldcast.status();
  assert.equal(status.viewer_count, 2, "the redirected viewer has no session on the device");
  const record = await (await fetch(`${new URL(redirects[0].to).origin}/record`)).json();
  assert.ok(record.whep.length >= 1, "the overflow server saw no WHEP viewer");
  for (const page of [...pages, third]) await page.close();
});

test("the admin page shows the publish target, live, with its bytes and reconnects", async () => {
  const page = await chromium.browser.newPage();
  await page.goto(`${fieldcast.base}/admin#token=${ADMIN_TOKEN}`);
  await waitFor("the publish table filled", 10000, async () => (await page.locator("#publish tr").count()) === 1);
  const cells = await page.locator("#publish tr td").allTextContents();
  console.log(`# admin publish row: ${cells.join(" | ")}`);
  assert.equal(cells[0], "overflow");
  assert.equal(cells[1], "whip");
  assert.equal(cells[3], "live");
  assert.match(cells[5], /^\d+\.\d MB$/);
  assert.equal(cells[7], "0", "no reconnects on a quiet run");
  await page.close();
});
