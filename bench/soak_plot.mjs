// The soak's plot as a self-made SVG (no plotting library to install): glass-to-glass latency
// per time bucket (p50, p95, max) on top, the daemon's resident memory below, and the machine's
// load average when it was recorded, against minutes.

const WIDTH = 900;
const PANEL = 220;
const MARGIN = { left: 70, right: 20, top: 34, gap: 56, bottom: 44 };

const escape = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;");

// Round tick steps (1, 2, 5 × 10^k) giving about `count` ticks over [low, high].
function ticks(low, high, count = 5) {
  const raw = (high - low) / count || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) out.push(Number(v.toFixed(6)));
  return out;
}

function panel({ top, title, unit, xMax, lines, yMin }) {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const values = lines.flatMap((l) => l.points.map(([, y]) => y)).filter(Number.isFinite);
  let low = yMin ?? Math.min(...values);
  let high = Math.max(...values);
  if (!values.length) [low, high] = [0, 1];
  if (high - low < 1e-9) [low, high] = [low - 1, high + 1];
  const pad = (high - low) * 0.08;
  if (yMin === undefined) low -= pad;
  high += pad;
  const x = (v) => MARGIN.left + (v / (xMax || 1)) * plotWidth;
  const y = (v) => top + PANEL - ((v - low) / (high - low)) * PANEL;
  const out = [];
  out.push(`<text x="${MARGIN.left}" y="${top - 10}" font-size="14" font-weight="bold">${escape(title)}</text>`);
  out.push(`<rect x="${MARGIN.left}" y="${top}" width="${plotWidth}" height="${PANEL}" fill="none" stroke="#888"/>`);
  for (const t of ticks(low, high)) {
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${y(t) + 4}" font-size="11" text-anchor="end">${t}</text>`);
  }
  for (const t of ticks(0, xMax)) {
    out.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${top}" y2="${top + PANEL}" stroke="#eee"/>`);
    out.push(`<text x="${x(t)}" y="${top + PANEL + 15}" font-size="11" text-anchor="middle">${t}</text>`);
  }
  out.push(
    `<text x="18" y="${top + PANEL / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 18 ${top + PANEL / 2})">${escape(unit)}</text>`,
  );
  let legendX = MARGIN.left + plotWidth;
  for (const line of [...lines].reverse()) {
    const points = line.points.filter(([, v]) => Number.isFinite(v));
    if (points.length) {
      const path = points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(" ");
      out.push(`<polyline points="${path}" fill="none" stroke="${line.colour}" stroke-width="${line.width ?? 1.5}"/>`);
    }
    legendX -= 12 + 7 * line.label.length + 22;
    out.push(`<line x1="${legendX}" x2="${legendX + 18}" y1="${top - 14}" y2="${top - 14}" stroke="${line.colour}" stroke-width="3"/>`);
    out.push(`<text x="${legendX + 22}" y="${top - 10}" font-size="12">${escape(line.label)}</text>`);
  }
  return out.join("\n");
}

/**
 * `buckets`: [{ minute, p50, p95, max }] of latency; `memory`: [{ minute, rss_mib }];
 * `title` names the run. Returns the SVG document.
 */
export function soakSvg({ title, buckets, memory, xMax }) {
  const withLoad = memory.some((m) => Number.isFinite(m.load_average));
  const panels = withLoad ? 3 : 2;
  const height = MARGIN.top + panels * PANEL + (panels - 1) * MARGIN.gap + MARGIN.bottom + 10;
  const top = (i) => MARGIN.top + i * (PANEL + MARGIN.gap);
  const body = [
    panel({
      top: top(0),
      title: `Glass-to-glass latency, ${title}`,
      unit: "ms",
      xMax,
      yMin: 0,
      lines: [
        { label: "max", colour: "#bbb", width: 1, points: buckets.map((b) => [b.minute, b.max]) },
        { label: "p95", colour: "#d62728", points: buckets.map((b) => [b.minute, b.p95]) },
        { label: "p50", colour: "#1f77b4", points: buckets.map((b) => [b.minute, b.p50]) },
      ],
    }),
    panel({
      top: top(1),
      title: "fieldcast resident memory",
      unit: "MiB",
      xMax,
      lines: [{ label: "RSS", colour: "#2ca02c", points: memory.map((m) => [m.minute, m.rss_mib]) }],
    }),
  ];
  if (withLoad) {
    body.push(
      panel({
        top: top(2),
        title: "machine load average, 1 min (2 CPUs, shared with other work)",
        unit: "load",
        xMax,
        yMin: 0,
        lines: [{ label: "load", colour: "#9467bd", points: memory.map((m) => [m.minute, m.load_average]) }],
      }),
    );
  }
  body.push(`<text x="${WIDTH / 2}" y="${height - 12}" font-size="12" text-anchor="middle">minutes since the measurement started</text>`);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${body.join("\n")}\n</svg>\n`
  );
}
