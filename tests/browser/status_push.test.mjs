// The viewer page hears the count and live/offline pushed (Server-Sent Events) instead of
// polling the status: its count follows a join and a leave within 2 s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { waitFor, waitLive, fieldcastWithBrowser } from "./fieldcast.mjs";

const rig = fieldcastWithBrowser({ args: ["--audio", "none"] });

const countShown = (page) => page.locator("#viewers").textContent();

// Milliseconds from now until the page shows `text` as its count, or a failure saying so.
async function msUntilCount(page, text, what) {
  const started = Date.now();
  await waitFor(`the first page showing "${text}" after ${what}`, 4000, async () => (await countShown(page)) === text);
  return Date.now() - started;
}

test("the count follows a join and a leave within 2 s, pushed, not polled", async () => {
  const first = await rig.chromium.browser.newPage();
  const requests = [];
  first.on("request", (r) => requests.push(new URL(r.url()).pathname));
  await first.goto(rig.fieldcast.base + "/");
  await waitLive(first);
  await waitFor('the page showing "1 watching"', 4000, async () => (await countShown(first)) === "1 watching");

  const second = await rig.chromium.browser.newPage();
  const posted = new Promise((resolve) =>
    second.on("response", (r) => new URL(r.url()).pathname === "/whep" && r.request().method() === "POST" && resolve()),
  );
  await second.goto(rig.fieldcast.base + "/");
  await posted;
  const joinMs = await msUntilCount(first, "2 watching", "a second viewer's WHEP POST was answered");
  await waitLive(second);

  // Leaving the page sends its DELETE (pagehide); the page stays open so the request surely
  // goes out even on a busy machine.
  await second.goto("about:blank");
  const leaveMs = await msUntilCount(first, "1 watching", "the second page left");
  await second.close();
  console.log(`count on the page: ${joinMs} ms after a join, ${leaveMs} ms after a leave`);
  assert.ok(joinMs <= 2000, `the join reached the page after ${joinMs} ms`);
  assert.ok(leaveMs <= 2000, `the leave reached the page after ${leaveMs} ms`);

  // Quiet for a while: no status polling, one event stream.
  await new Promise((r) => setTimeout(r, 6000));
  const statusFetches = requests.filter((p) => p === "/api/status").length;
  const streams = requests.filter((p) => p === "/api/events").length;
  assert.ok(statusFetches <= 1, `the page fetched /api/status ${statusFetches} times (the title, once)`);
  assert.equal(streams, 1, `the page opened ${streams} event streams`);
  const view = await first.evaluate(() => ({ healthy: window.fieldcast.healthy, count: window.fieldcast.viewerCount }));
  assert.deepEqual(view, { healthy: true, count: 1 });
  await first.close();
});

test("a hidden tab lets go of its event stream and takes it up again when shown", async () => {
  const page = await rig.chromium.browser.newPage();
  await page.goto(rig.fieldcast.base + "/");
  await waitLive(page);
  // Headless tabs are always visible: tell the page it was hidden, as a browser would. The
  // page opens a stream only when it holds none, so a new one proves the old one was closed.
  const opened = [];
  page.on("request", (r) => new URL(r.url()).pathname === "/api/events" && opened.push(Date.now()));
  await page.evaluate(() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  await page.evaluate(() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  await waitFor("a new event stream after the tab was shown again", 3000, async () => opened.length === 1);
  const count = (await rig.fieldcast.publicStatus()).viewer_count;
  await waitFor(`the count (${count}) back on the page`, 3000, async () => (await countShown(page)) === `${count} watching`);
  await page.close();
});
