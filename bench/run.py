#!/usr/bin/env python3
"""fieldcast vs Janus, side by side, in one run.

Builds fieldcast and the load client (`cargo build --release -p fieldcast-load`), records the
test stream once (1280x720@30, x264 2 Mbit/s, IDR every 2 s, RTP pt 96), runs the client — which feeds
the same packets to both servers, starts them, joins N viewers to each and measures — then
writes the report (BENCHMARKS.md and a plot).

  bench/run.py            full: N = 1, 10, 50, 100, 200, twice (about 13 minutes of measuring)
  bench/run.py --quick    N = 1, 5, a few seconds each, Janus only when installed (< 1 minute
                          once built); results under target/bench/quick/, nothing committed
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target"
STREAM = TARGET / "bench" / "stream-1280x720p30-2000k-gop60.rtp"
VENV = TARGET / "bench-venv"
# 10 s: five 2 s GOPs, looped by the feeder.
STREAM_PIPELINE = (
    "videotestsrc num-buffers=300 pattern=smpte horizontal-speed=6 "
    "! video/x-raw,width=1280,height=720,framerate=30/1 "
    "! timeoverlay font-desc=\"Sans 48\" "
    "! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2000 key-int-max=60 "
    "! video/x-h264,profile=constrained-baseline "
    "! rtph264pay pt=96 config-interval=-1 mtu=1200 "
    "! rtpstreampay ! filesink location={out}"
)


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command, **kwargs):
    log("$ " + " ".join(str(c) for c in command))
    return subprocess.run(command, cwd=ROOT, check=True, **kwargs)


def build():
    run(["cargo", "build", "--release", "--bin", "fieldcast"])
    out = run(
        ["cargo", "build", "--release", "-p", "fieldcast-load", "--message-format=json"],
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "fieldcast-load":
            if message.get("executable"):
                return Path(message["executable"])
    sys.exit("could not find the load client's executable in cargo's output")


def record_stream():
    if STREAM.exists():
        return
    STREAM.parent.mkdir(parents=True, exist_ok=True)
    partial = STREAM.with_suffix(".partial")
    run(["gst-launch-1.0", "-q", *shlex_split(STREAM_PIPELINE.format(out=partial))], timeout=120)
    partial.rename(STREAM)


def shlex_split(text):
    import shlex

    return shlex.split(text)


def ensure_matplotlib():
    python = VENV / "bin" / "python"
    try:
        if not python.exists():
            run([sys.executable, "-m", "venv", str(VENV)], timeout=120)
        check = subprocess.run([python, "-c", "import matplotlib"], capture_output=True)
        if check.returncode != 0:
            run([python, "-m", "pip", "install", "-q", "matplotlib"], timeout=600)
        return python
    except (subprocess.SubprocessError, OSError) as error:
        log(f"no plot: could not set up matplotlib ({error})")
        return None


def measure(command, budget, work):
    """Runs the load client once; it starts and stops the servers itself."""
    measured = time.monotonic()
    log(f"$ {' '.join(command)}")
    # Its own process group, so the servers it starts go with it whatever happens.
    client = subprocess.Popen(command, cwd=ROOT, start_new_session=True)

    def stop(*_):
        try:
            os.killpg(client.pid, signal.SIGTERM)
            client.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(client.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(1)))
    try:
        code = client.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        stop()
        sys.exit(f"the load client did not finish within {budget:.0f} s")
    except KeyboardInterrupt:
        stop()
        raise
    finally:
        # Anything left of the group (a server that ignored SIGTERM) goes too.
        try:
            os.killpg(client.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if code != 0:
        sys.exit(f"the load client failed ({code}); server logs in {work}")
    log(f"measured in {time.monotonic() - measured:.0f} s")


def stamp_host(results):
    """Records in the results which machine and revision measured them, so a report rebuilt
    later, elsewhere, still names the host the figures come from."""
    from report import machine  # bench/report.py, beside this file

    data = json.loads(results.read_text())
    data["host"] = machine()
    results.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N=1,5 for a few seconds each (CI)")
    parser.add_argument("--viewers", help="comma-separated viewer counts")
    parser.add_argument("--window", type=float, help="seconds measured per server and N")
    parser.add_argument("--sequential-joins", type=int, help="one-at-a-time joins for TTFF")
    parser.add_argument("--cycles", type=int, help="join/leave cycles per server (full: 1000, quick: 20)")
    parser.add_argument("--runs", type=int, help="whole runs, one after another (full: 2, quick: 1)")
    parser.add_argument("--no-janus", action="store_true")
    parser.add_argument("--baseline-bin", type=Path,
                        help="also measure this fieldcast binary (an earlier build), fed the same "
                             "stream at the same moment: an A/B of two builds")
    parser.add_argument("--baseline-arg", action="append", default=[],
                        help="an argument for the baseline's `run` (repeatable), e.g. "
                             "--baseline-arg=--egress --baseline-arg=connections")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and client to CPUs")
    parser.add_argument("--out-dir", type=Path, help="where results go")
    parser.add_argument("--markdown", type=Path, help="the report to write")
    args = parser.parse_args()

    if args.quick:
        settings = dict(viewers="1,5", window=3, settle=1, idle=2, pause=1, joins=3, join_timeout=10, runs=1, cycles=20)
        out_dir = args.out_dir or TARGET / "bench" / "quick"
        markdown = args.markdown or out_dir / "BENCHMARKS.md"
        plot = False
    else:
        settings = dict(viewers="1,10,50,100,200", window=20, settle=3, idle=10, pause=3, joins=20, join_timeout=20, runs=2,
                        cycles=1000)
        out_dir = args.out_dir or ROOT / "bench" / "results"
        markdown = args.markdown or ROOT / "BENCHMARKS.md"
        plot = not args.no_plot
    if args.viewers:
        settings["viewers"] = args.viewers
    if args.window:
        settings["window"] = args.window
    if args.runs:
        settings["runs"] = args.runs
    if args.sequential_joins is not None:
        settings["joins"] = args.sequential_joins
    if args.cycles is not None:
        settings["cycles"] = args.cycles
    out_dir.mkdir(parents=True, exist_ok=True)

    if shutil.which("gst-launch-1.0") is None:
        sys.exit("gst-launch-1.0 is needed to record the stream (apt install gstreamer1.0-tools)")
    no_janus = args.no_janus or shutil.which("janus") is None
    if no_janus and not args.no_janus:
        if not args.quick:
            sys.exit("janus is not installed (apt install janus); --no-janus to measure fieldcast alone")
        log("janus not installed: fieldcast only")

    started = time.monotonic()
    load = build()
    record_stream()
    log(f"built and recorded in {time.monotonic() - started:.0f} s")

    cpus = os.cpu_count() or 1
    pin = not args.no_pin and cpus >= 2 and shutil.which("taskset") is not None
    work = TARGET / "bench" / ("quick-work" if args.quick else "work")
    command = [
        str(load),
        "--stream", str(STREAM),
        "--fieldcast-bin", str(TARGET / "release" / "fieldcast"),
        "--viewers", settings["viewers"],
        "--window", str(settings["window"]),
        "--settle", str(settings["settle"]),
        "--idle-window", str(settings["idle"]),
        "--pause", str(settings["pause"]),
        "--join-timeout", str(settings["join_timeout"]),
        "--sequential-joins", str(settings["joins"]),
        "--cycles", str(settings["cycles"]),
        "--work-dir", str(work),
    ]
    if no_janus:
        command.append("--no-janus")
    if args.baseline_bin:
        command += ["--baseline-bin", str(args.baseline_bin.resolve())]
        command += [f"--baseline-arg={arg}" for arg in args.baseline_arg]
    if pin:
        # Servers on CPU 1, the load client and feeder on CPU 0: neither steals the other's time.
        command = ["taskset", "-c", "0", *command, "--server-cpus", "1"]
    counts = [int(n) for n in settings["viewers"].split(",")]
    servers = 1 + (0 if no_janus else 1) + (1 if args.baseline_bin else 0)
    rounds = len(counts) * servers
    budget = 120 + rounds * (settings["join_timeout"] + settings["settle"] + settings["window"] + settings["pause"] + 15)
    budget += settings["joins"] * 4 * servers
    # Join/leave cycles: batches of 10, each well under 5 s.
    budget += (settings["cycles"] // 10 + 1) * 5 * servers
    results = []
    for index in range(settings["runs"]):
        # The first run is the one reported in full; the others show how much figures move.
        out = out_dir / ("results.json" if index == 0 else f"results-{index + 1}.json")
        measure(command + ["--out", str(out)], budget, work)
        stamp_host(out)
        results.append(out)
    for stale in out_dir.glob("results-*.json"):
        if stale not in results:
            stale.unlink()

    python = ensure_matplotlib() if plot else None
    report = [
        str(python or sys.executable),
        str(ROOT / "bench" / "report.py"),
        *[arg for path in results for arg in ("--json", str(path))],
        "--markdown", str(markdown),
        "--pinned", "yes" if pin else "no",
    ]
    if python:
        report += ["--png", str(out_dir / "cpu-latency.png")]
    run(report, timeout=120)
    log(f"done in {time.monotonic() - started:.0f} s: {markdown}")


if __name__ == "__main__":
    main()
