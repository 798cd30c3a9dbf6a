#!/usr/bin/env python3
"""Turns the load client's results.json (one or more runs) into BENCHMARKS.md (tables, ratios,
run-to-run spread, targets, the notes in bench/NOTES.md) and, with --png, a plot of CPU and
latency against N."""

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fmt(value, decimals=1):
    return "–" if value is None else f"{value:.{decimals}f}"


def ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}"


def machine():
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def output(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    janus = output(["janus", "--version"]).splitlines()
    return {
        "cpu": f"{os.cpu_count()} × {model}",
        "kernel": platform.release(),
        "janus": janus[0] if janus else "not installed",
        "revision": output(["git", "rev-parse", "--short", "HEAD"]) or "?",
        "dirty": bool(output(["git", "status", "--porcelain", "--", "src", "bench"])),
    }


def per_packet_us(r):
    """Server CPU time per RTP packet it sent (all of its CPU, so idle work is included)."""
    packets = r["joined"] * r["packets_per_viewer_s"]
    return None if r["cpu_pct"] is None or not packets else r["cpu_pct"] / 100 / packets * 1e6


def saturated(r):
    """The server could not keep up: a whole core busy, packets lost, or viewers without video."""
    return (r["cpu_pct"] or 0) >= 95 or r["packets_lost"] > 0 or r["all_video_s"] is None


def server_steal(data, r):
    """% of the server's CPU the hypervisor gave to other guests during the window (the
    highest of the CPUs it was pinned to, or of all when it was not); None if not recorded."""
    steal = r["machine"].get("machine_cpu_steal_pct")
    if not steal:
        return None
    pinned = [int(c) for c in str(data.get("server_cpus") or "").split(",") if c.strip().isdigit()]
    chosen = [steal[c] for c in pinned if c < len(steal)] or steal
    return max(chosen)


def cpu_ratio(f, j):
    """fieldcast / Janus CPU, how it was compared, and which servers did not keep up (empty
    when compared per viewer). Per viewer, unless a server did not keep up: then its CPU per
    viewer may be capped by the core and covers packets it never delivered, so the two are
    compared per packet delivered."""
    if f is None or j is None or f["cpu_per_viewer_pct"] is None or not j["cpu_per_viewer_pct"]:
        return None, None, ""
    who = " and ".join(name for name, r in (("fieldcast", f), ("Janus", j)) if saturated(r))
    if who:
        fp, jp = per_packet_us(f), per_packet_us(j)
        if fp is None or not jp:
            return None, None, who
        why = "; ".join(f"{name} {r['cpu_pct']:.0f} % of a core, {r['packets_lost']} packets lost, "
                        f"{r['without_video']} viewers without video"
                        for name, r in (("fieldcast", f), ("Janus", j)) if saturated(r))
        return fp / jp, f"per packet delivered, as {who} did not keep up ({why}): {fp:.1f} vs {jp:.1f} µs", who
    return f["cpu_per_viewer_pct"] / j["cpu_per_viewer_pct"], (
        f"{f['cpu_per_viewer_pct']:.3f} % vs {j['cpu_per_viewer_pct']:.3f} % of a core"), ""


def run_ratio(f, j):
    r, _, who = cpu_ratio(f, j)
    if r is None:
        return "–"
    return f"{r:.2f} (per packet; {who} did not keep up)" if who else f"{r:.2f}"


def by(rounds, server, n):
    return next((r for r in rounds if r["server"] == server and r["viewers"] == n), None)


def rss_slope(rounds, server):
    """MiB per extra viewer: least-squares slope of RSS against N."""
    points = [(r["viewers"], r["rss_mib"]) for r in rounds if r["server"] == server and r["rss_mib"] is not None]
    if len(points) < 2:
        return None
    mean_n = sum(n for n, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    var = sum((n - mean_n) ** 2 for n, _ in points)
    return sum((n - mean_n) * (r - mean_r) for n, r in points) / var if var else None


def targets(data):
    rounds = data["rounds"]
    rows = []
    fc = lambda n: by(rounds, "fieldcast", n)  # noqa: E731
    ja = lambda n: by(rounds, "janus", n)  # noqa: E731
    for n in (100, 200):
        r, how, _ = cpu_ratio(fc(n), ja(n))
        if r is not None:
            rows.append((f"CPU per viewer ≤ 0.5 × Janus at {n}", f"{r:.2f} × ({how})", r <= 0.5))
        else:
            rows.append((f"CPU per viewer ≤ 0.5 × Janus at {n}", "not measured", None))
    seq = next((s for s in data.get("sequential_joins", []) if s["server"] == "fieldcast"), None)
    if seq and seq["ttff_ms"]["count"]:
        t = seq["ttff_ms"]
        rows.append(("TTFF p50 ≤ 300 ms (2 s GOP, one viewer at a time)", f"{t['p50']:.0f} ms over {t['count']} joins", t["p50"] <= 300))
        rows.append(("TTFF p95 ≤ 600 ms", f"{t['p95']:.0f} ms", t["p95"] <= 600))
    f = fc(100)
    if f and f["latency_ms"]["p99"] is not None:
        steal = server_steal(data, f)
        stolen = "" if steal is None else f"; the hypervisor took {steal:.0f} % of the server's core (steal)"
        rows.append(("added latency p99 ≤ 5 ms at 100 viewers", f"{f['latency_ms']['p99']:.2f} ms (p50 {f['latency_ms']['p50']:.2f}); keyframes p99 {fmt(f.get('keyframe_latency_ms', {}).get('p99'), 1)}, other frames p99 {fmt(f.get('delta_latency_ms', {}).get('p99'), 2)}{stolen}", f["latency_ms"]["p99"] <= 5))
    fc_rounds = [r for r in rounds if r["server"] == "fieldcast"]
    if fc_rounds:
        lost = sum(r["packets_lost"] + r["frames_lost"] for r in fc_rounds)
        failed = sum(len(r["join_errors"]) + r["without_video"] for r in fc_rounds)
        rows.append(("0 loss", f"{sum(r['packets_lost'] for r in fc_rounds)} packets, {sum(r['frames_lost'] for r in fc_rounds)} frames lost in all windows; {failed} failed joins", lost == 0 and failed == 0))
    slope = rss_slope(rounds, "fieldcast")
    if slope is not None:
        rows.append(("RSS growth ≤ 0.5 MiB per extra viewer", f"{slope:.2f} MiB per viewer (fit over N)", slope <= 0.5))
    f = fc(100)
    if f:
        v = f["all_video_s"]
        rows.append(("100 simultaneous joins all receiving video within 5 s", "not all did" if v is None else f"all within {v:.2f} s", v is not None and v <= 5))
    return rows


def markdown(data, others, plot, pinned):
    m = data.get("host")
    if m is None:
        m = machine()
        m["revision"] += " (the results name no host: this is the machine the report was written on)"
    rounds = data["rounds"]
    s = data["stream"]
    out = []
    w = out.append
    w("# Benchmarks: fieldcast vs Janus\n")
    finished = data.get("finished_unix_s")
    when = time.gmtime(finished) if finished else time.gmtime()
    w(f"Measured by `bench/run.py` on {time.strftime('%Y-%m-%d %H:%M UTC', when)}; "
      "every figure below is measured, except the Raspberry Pi projection, which says so.\n")
    w(f"- machine: {m['cpu']}, Linux {m['kernel']}; {m['janus']}; fieldcast {m['revision']}"
      f"{' with uncommitted changes' if m['dirty'] else ''}")
    w(f"- stream: 1280x720 @ {s['fps']:.0f} fps, x264 ultrafast/zerolatency, IDR every 2 s, "
      f"{s['bitrate_kbps']:.0f} kbit/s, {s['packets_per_s']:.0f} RTP packets/s (each frame's access unit delimiter packet "
      "also carries the bench's 29-byte counter SEI, in a STAP-A: no extra packets), "
      f"a {s['loop_s']:.0f} s recording looped")
    ciphers = {}
    for r in rounds:
        ciphers.setdefault(r["server"], r.get("srtp_cipher"))
    w("- SRTP profile negotiated with the load client: " + ", ".join(f"{k} {v or '?'}" for k, v in ciphers.items()))
    w(f"- servers {'pinned to CPU 1, load client and feeder to CPU 0' if pinned else 'not pinned'}; "
      f"{data['window_s']:.0f} s measured per server and N; Janus: {data['janus']}\n")

    w("## Results\n")
    w("| N | server | joined | all video (s) | TTFF p50 / p95 (ms) | CPU (% of a core) | CPU per viewer (%) | CPU per packet sent (µs) | RSS (MiB) | packets/s per viewer | lost packets / frames | latency p50 / p99 / max (ms) | latency p99, keyframes / other frames (ms) | client CPU (%) | CPU0 / CPU1 busy (steal) (%) |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rounds:
        lat = r["latency_ms"]
        steal = r["machine"].get("machine_cpu_steal_pct") or []
        busy = " / ".join(
            f"{b:.0f}" + (f" ({steal[i]:.0f})" if i < len(steal) else "")
            for i, b in enumerate(r["machine"]["machine_cpu_busy_pct"])
        )
        errors = f" ({len(r['join_errors'])} failed)" if r["join_errors"] else ""
        w(f"| {r['viewers']} | {r['server']} | {r['joined']}{errors} | {fmt(r['all_video_s'], 2)} | "
          f"{fmt(r['ttff_ms']['p50'], 0)} / {fmt(r['ttff_ms']['p95'], 0)} | {fmt(r['cpu_pct'])} | "
          f"{fmt(r['cpu_per_viewer_pct'], 3)} | {fmt(per_packet_us(r), 1)} | {fmt(r['rss_mib'])} | {r['packets_per_viewer_s']:.0f} | "
          f"{r['packets_lost']} / {r['frames_lost']} | {fmt(lat['p50'], 2)} / {fmt(lat['p99'], 2)} / {fmt(lat['max'], 1)} | "
          f"{fmt(r.get('keyframe_latency_ms', {}).get('p99'), 1)} / {fmt(r.get('delta_latency_ms', {}).get('p99'), 2)} | "
          f"{fmt(r['client_cpu_pct'], 0)} | {busy} |")
    idle = ", ".join(f"{i['server']} {fmt(i['cpu_pct'], 2)} % CPU, {fmt(i['rss_mib'])} MiB" for i in data["idle"])
    w(f"\nWith no viewer (stream flowing): {idle}.\n")

    counts = sorted({r["viewers"] for r in rounds})
    pairs = [(n, by(rounds, "fieldcast", n), by(rounds, "janus", n)) for n in counts]
    pairs = [p for p in pairs if p[1] and p[2]]
    if pairs:
        w("## fieldcast / Janus\n")
        w("| N | CPU per viewer | CPU per viewer above idle | RSS | latency p99 | packets/s per viewer |")
        w("|---:|---:|---:|---:|---:|---:|")
        idle_cpu = {i["server"]: i["cpu_pct"] or 0 for i in data["idle"]}
        for n, f, j in pairs:
            marginal = lambda r: None if r["cpu_pct"] is None else (r["cpu_pct"] - idle_cpu[r["server"]]) / n  # noqa: E731
            mark = " (Janus did not keep up)" if saturated(j) else ""
            w(f"| {n} | {ratio(f['cpu_per_viewer_pct'], j['cpu_per_viewer_pct'])}{mark} | {ratio(marginal(f), marginal(j))} | "
              f"{ratio(f['rss_mib'], j['rss_mib'])} | {ratio(f['latency_ms']['p99'], j['latency_ms']['p99'])} | "
              f"{ratio(f['packets_per_viewer_s'], j['packets_per_viewer_s'])} |")
        w("")

    ab = [(n, by(rounds, "fieldcast", n), by(rounds, "fieldcast-baseline", n)) for n in counts]
    ab = [p for p in ab if p[1] and p[2]]
    if ab:
        baseline = data.get("baseline") or {}
        w("## A/B: this build / the baseline build\n")
        w(f"Two builds fed the same stream at the same moment: `fieldcast` is this build, "
          f"`fieldcast-baseline` is `{baseline.get('bin', '?')}`"
          + (f" run with `{' '.join(baseline['args'])}`" if baseline.get("args") else "") + ".\n")
        w("| N | CPU per packet sent, this / baseline (µs) | this / baseline | latency p99, this / baseline (ms) | keyframes p99 (ms) | RSS (MiB) | steal, server CPU (%) |")
        w("|---:|---:|---:|---:|---:|---:|---:|")
        for n, l, c in ab:
            steal = server_steal(data, l)
            w(f"| {n} | {fmt(per_packet_us(l), 2)} / {fmt(per_packet_us(c), 2)} | {ratio(per_packet_us(l), per_packet_us(c))} | "
              f"{fmt(l['latency_ms']['p99'], 2)} / {fmt(c['latency_ms']['p99'], 2)} | "
              f"{fmt(l.get('keyframe_latency_ms', {}).get('p99'), 1)} / {fmt(c.get('keyframe_latency_ms', {}).get('p99'), 1)} | "
              f"{fmt(l['rss_mib'])} / {fmt(c['rss_mib'])} | {fmt(steal, 0)} |")
        w("")

    seq = data.get("sequential_joins", [])
    if seq:
        w("## Time to first frame, one viewer at a time\n")
        w("From the viewer starting to join (before its PeerConnection exists) to the first complete "
          "frame with SPS, PPS and IDR; joins spread over the GOP.\n")
        w("| server | joins | failed | p50 (ms) | p95 (ms) | max (ms) |")
        w("|---|---:|---:|---:|---:|---:|")
        for q in seq:
            t = q["ttff_ms"]
            w(f"| {q['server']} | {q['joins']} | {q['failed']} | {fmt(t['p50'], 0)} | {fmt(t['p95'], 0)} | {fmt(t['max'], 0)} |")
        w("")

    cycles = data.get("cycles", [])
    if cycles:
        w("## Join and leave\n")
        w("Viewers join ten at a time, wait for their DTLS handshake and leave; RSS after a warm-up "
          "batch, then after each tenth of the run, then 3 s after the last.\n")
        w("| server | viewers | failed | seconds | connect p50 / p95 (ms) | RSS start → end (MiB) | growth per 1000 (MiB) | RSS along the way (MiB) |")
        w("|---|---:|---:|---:|---:|---:|---:|---|")
        for c in cycles:
            t = c["connect_ms"]
            trace = " ".join(fmt(v, 1) for v in c["rss_trace_mib"])
            w(f"| {c['server']} | {c['viewers']} | {c['failed']} | {fmt(c['seconds'], 0)} | {fmt(t['p50'], 0)} / {fmt(t['p95'], 0)} | "
              f"{fmt(c['rss_start_mib'], 1)} → {fmt(c['rss_end_mib'], 1)} | {fmt(c['growth_mib_per_1000'], 2)} | {trace} |")
        w("")

    if others:
        w("## Run to run\n")
        w(f"The same measurement {len(others) + 1} times in a row; the tables above are run 1.\n")
        w("| N | server | CPU per viewer (%) | fieldcast / Janus | latency p99 (ms) | lost packets / frames |")
        w("|---:|---|---|---|---|---|")
        runs = [data, *others]
        for n in counts:
            for server in ("fieldcast", "janus"):
                per_run = [by(d["rounds"], server, n) for d in runs]
                if not any(per_run):
                    continue
                cpu = " / ".join(fmt(r and r["cpu_per_viewer_pct"], 3) for r in per_run)
                lat = " / ".join(fmt(r and r["latency_ms"]["p99"], 1) for r in per_run)
                lost = " / ".join("–" if r is None else f"{r['packets_lost']}, {r['frames_lost']}" for r in per_run)
                ratios = "" if server == "janus" else " / ".join(
                    run_ratio(by(d["rounds"], "fieldcast", n), by(d["rounds"], "janus", n)) for d in runs
                )
                w(f"| {n} | {server} | {cpu} | {ratios} | {lat} | {lost} |")
        w("")

    w("## Targets\n")
    w("| target | measured (run 1) | other runs | met |")
    w("|---|---|---|---|")
    other_rows = [{name: (value, ok) for name, value, ok in targets(d)} for d in others]
    for name, value, ok in targets(data):
        seen = [ok] + [rows[name][1] for rows in other_rows if name in rows]
        also = "; ".join(rows[name][0] for rows in other_rows if name in rows) or "–"
        if any(o is None for o in seen):
            met = "–"
        elif all(seen):
            met = "yes"
        elif not any(seen):
            met = "**no**"
        else:
            met = f"in {sum(seen)} of {len(seen)} runs"
        w(f"| {name} | {value} | {also} | {met} |")
    w("")
    if plot:
        w("## CPU and latency against N\n")
        w(f"![Server CPU and latency p50/p99 against N]({os.path.relpath(plot, ROOT)})\n")
    # Glass-to-glass and soak figures come from other tools; their section is kept as written.
    latency = ROOT / "bench" / "LATENCY.md"
    if latency.exists():
        w(latency.read_text())
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        w(notes.read_text())
    return "\n".join(out) + "\n"


def draw(data, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu, lat) = plt.subplots(1, 2, figsize=(11, 4.2))
    for server, colour in (("fieldcast", "tab:blue"), ("janus", "tab:orange")):
        rounds = sorted((r for r in data["rounds"] if r["server"] == server), key=lambda r: r["viewers"])
        if not rounds:
            continue
        n = [r["viewers"] for r in rounds]
        cpu.plot(n, [r["cpu_pct"] for r in rounds], "o-", color=colour, label=server)
        lat.plot(n, [r["latency_ms"]["p99"] for r in rounds], "o-", color=colour, label=f"{server} p99")
        lat.plot(n, [r["latency_ms"]["p50"] for r in rounds], "o--", color=colour, alpha=0.6, label=f"{server} p50")
    cpu.set(xlabel="viewers", ylabel="server CPU (% of one core)", title="Server CPU")
    lat.set(xlabel="viewers", ylabel="ms", title="Feeder send → viewer receive", yscale="log")
    for axis in (cpu, lat):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, action="append", required=True,
                        help="results of a run; repeat for several runs, the first is shown in full")
    parser.add_argument("--markdown", type=Path, required=True)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--pinned", default="yes")
    args = parser.parse_args()
    data, *others = [json.loads(path.read_text()) for path in args.json]
    if args.png:
        draw(data, args.png)
    args.markdown.write_text(markdown(data, others, args.png, args.pinned == "yes"))
    print(f"wrote {args.markdown}" + (f" and {args.png}" if args.png else ""))


if __name__ == "__main__":
    main()
