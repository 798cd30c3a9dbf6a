// Writes bench/LATENCY.md — the glass-to-glass and soak section that bench/report.py carries
// into BENCHMARKS.md — from the results the two tools wrote:
//   bench/results/glass-to-glass/viewers-N.json   node tests/browser/glass_to_glass.mjs --json
//   bench/results/soak/soak.json (+ soak.svg)     node bench/soak.mjs
// `bench/latency-notes.md`, when present, is appended (what the figures mean, by hand).
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(new URL(".", import.meta.url).pathname, "..");
const results = join(root, "bench/results");
const f = (v, digits = 0) => (v === null || v === undefined ? "–" : v.toFixed(digits));

const out = [];
const w = (line = "") => out.push(line);
w("## Glass-to-glass latency and the soak\n");
w(
  "Per frame, in headless Chromium on the same machine: the `test` pipeline draws the wall-clock " +
    "time each frame passes its probe (after `videotestsrc` and `clockoverlay`, before the encoder: " +
    "its capture, for this source; a camera's exposure and readout come before that) as a row of " +
    "blocks along the bottom edge; the page draws every frame it shows " +
    "(`requestVideoFrameCallback`) into a canvas, decodes the blocks, and subtracts them from the " +
    "frame's `expectedDisplayTime` (when the compositor expects it on screen) in wall-clock time. " +
    "Frames whose picture is newer than the metadata describes are counted against the frame " +
    "described (from the RTP time). Headless Chromium composites at 60 Hz, so figures fall on " +
    "~16.7 ms steps.\n",
);

const dir = join(results, "glass-to-glass");
const runs = existsSync(dir)
  ? readdirSync(dir)
      .filter((name) => name.endsWith(".json"))
      .map((name) => JSON.parse(readFileSync(join(dir, name), "utf8")))
      .sort((a, b) => a.viewers - b.viewers || Number(a.audio === false) - Number(b.audio === false))
  : [];
if (runs.length) {
  w("### Glass-to-glass, by number of viewers\n");
  w("`node tests/browser/glass_to_glass.mjs --viewers N --seconds 60 --json …`: one page, N − 1 load-client viewers.\n");
  w("| viewers | sound | frames shown | unreadable / drawn ahead | latency p50 / p95 / max (ms) | capture → received p50 / p95 (ms) | jitter buffer, video / audio (ms) | page reconnects | load viewers: packets lost, stalled | load average | measured |");
  w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const r of runs) {
    const l = r.latency_ms;
    const load = r.load_client ? `${r.load_client.packets_lost}, ${r.load_client.stalled_viewers}` : "–";
    w(
      `| ${r.viewers} | ${r.audio === false ? "no" : "yes"} | ${r.frames} | ${r.unreadable} / ${r.drawn_ahead} | ` +
        `${f(l.p50)} / ${f(l.p95)} / ${f(l.max)} | ${f(r.to_receive_ms.p50)} / ${f(r.to_receive_ms.p95)} | ` +
        `${f(r.jitter_buffer_ms?.video?.delay_ms)} / ${r.audio === false ? "–" : f(r.jitter_buffer_ms?.audio?.delay_ms)} | ` +
        `${r.page_reconnects} | ${load} | ${f(r.load_average_1min, 1)} | ${r.measured_at.slice(0, 16).replace("T", " ")} UTC |`,
    );
  }
  w();
}

const soakPath = join(results, "soak/soak.json");
if (existsSync(soakPath)) {
  const s = JSON.parse(readFileSync(soakPath, "utf8"));
  const mark = (ok) => (ok ? "yes" : "**no**");
  w("### Soak\n");
  w(
    `\`node bench/soak.mjs\`: ${f(s.minutes)} minutes from ${s.measured_at.slice(0, 16).replace("T", " ")} UTC, ` +
      `${s.load_viewers} load-client viewers and one Chromium page, sound ${s.audio === false ? "off" : "on"}; ` +
      `${s.frames_shown} frames shown, ${s.frames_unreadable} without a readable stamp, ` +
      `${s.frames_drawn_ahead_of_their_metadata ?? "–"} drawn ahead of their metadata (corrected)` +
      (s.load_average_mean ? `; machine load average ${f(s.load_average_mean, 1)} on average (shared with other work)` : "") +
      ".\n",
  );
  w("| target | measured | met |");
  w("|---|---|---|");
  const first = s.first_window_ms;
  const last = s.last_window_ms;
  w(
    `| latency p95, last ${f(s.window_s / 60, 0)} min within 20 ms of the first | first p50 ${f(first.p50)} / p95 ${f(first.p95)} / max ${f(first.max)} ms, ` +
      `last p50 ${f(last.p50)} / p95 ${f(last.p95)} / max ${f(last.max)} ms: ${s.p95_drift_ms >= 0 ? "+" : ""}${f(s.p95_drift_ms)} ms | ${mark(s.checks.latency_p95_drift)} |`,
  );
  // Load on a shared machine comes and goes; the best 10 s of each window shows whether the
  // floor itself moved, which creep would do.
  const floor = (from, to) => {
    const inside = s.buckets.filter((b) => b.minute * 60 >= from && b.minute * 60 < to).map((b) => b.p50);
    return inside.length ? Math.min(...inside) : null;
  };
  const total = s.minutes * 60;
  w(
    `| (not a target) lowest 10 s p50 in each window, the floor creep would lift | first ${f(floor(0, s.window_s))} ms, last ${f(floor(total - s.window_s, total))} ms | – |`,
  );
  w(`| RSS growth < 5 MiB | ${f(s.rss_start_mib, 1)} → ${f(s.rss_end_mib, 1)} MiB (${s.rss_growth_mib >= 0 ? "+" : ""}${f(s.rss_growth_mib, 2)}; highest ${f(s.rss_max_mib, 1)}) | ${mark(s.checks.rss_growth)} |`);
  w(`| 0 pipeline restarts | ${s.pipeline_restarts ?? "not readable"} | ${mark(s.checks.pipeline_restarts)} |`);
  w(`| 0 page reconnects | ${s.page_reconnects} | ${mark(s.checks.page_reconnects)} |`);
  w(
    `| load viewers kept receiving | ${s.load_client.stalled_viewers} stalled, ${s.load_client.packets_lost} packets lost of ${s.load_client.packets} | ${mark(s.checks.load_viewers_kept_receiving ?? s.load_client.stalled_viewers === 0)} |`,
  );
  w(
    `\ncapture → received (Chromium's \`receiveTime\`): first window p50 ${f(s.first_window_receive_ms.p50)} / p95 ${f(s.first_window_receive_ms.p95)} ms, ` +
      `last p50 ${f(s.last_window_receive_ms.p50)} / p95 ${f(s.last_window_receive_ms.p95)} ms.\n`,
  );
  if (existsSync(join(results, "soak/soak.svg"))) {
    w("![Glass-to-glass latency per 10 s (p50, p95, max) and fieldcast's RSS over the soak](bench/results/soak/soak.svg)\n");
  }
}

const notes = join(root, "bench/latency-notes.md");
if (existsSync(notes)) w(readFileSync(notes, "utf8").trimEnd() + "\n");
writeFileSync(join(root, "bench/LATENCY.md"), out.join("\n"));
console.log("wrote bench/LATENCY.md");
