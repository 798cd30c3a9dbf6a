// Links with ?token=… watch a stream that needs a token; links without are told why not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { stateWords, waitFor, waitLive, fieldcastWithBrowser } from "./fieldcast.mjs";

const rig = fieldcastWithBrowser({ args: ["--audio", "none"], config: '[access]\nviewer_tokens = ["club-2026"]\n' });

test("?token= is sent as a bearer token on every WHEP request", async () => {
  const page = await rig.chromium.browser.newPage();
  const whep = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (path === "/whep" || path.startsWith("/whep/")) whep.push([r.method(), r.headers().authorization]);
  });
  await page.goto(rig.fieldcast.base + "/?token=club-2026");
  await waitLive(page);
  const methods = whep.map(([m]) => m);
  assert.ok(methods.includes("OPTIONS") && methods.includes("POST"), `WHEP requests: ${methods.join(", ")}`);
  for (const [method, authorization] of whep) {
    assert.equal(authorization, "Bearer club-2026", `${method} without the token`);
  }
  // The DELETE sent as the page closes is not reported to the test; the daemon says it
  // was accepted, which it is only with the session's token.
  await page.close();
  await waitFor("the session deleted", 5000, async () => (await rig.fieldcast.status()).viewer_count === 0);
  assert.match(rig.fieldcast.log(), /viewer left .*reason="closed by request"/);
});

test("without a token the page says so and does not keep retrying", async () => {
  const page = await rig.chromium.browser.newPage();
  let posts = 0;
  page.on("request", (r) => r.method() === "POST" && (posts += 1));
  await page.goto(rig.fieldcast.base + "/");
  await waitFor("the page saying it cannot play", 5000, async () => (await stateWords(page)) === "cannot play");
  const notice = await page.locator("#notice").textContent();
  assert.match(notice, /token/i, `the notice should mention the token: ${notice}`);
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(posts, 1, "one refused offer, no retry loop");
  await page.close();
});
