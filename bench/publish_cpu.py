#!/usr/bin/env python3
"""What each publish target costs the device: fieldcast's CPU (user + system, % of one core)
with no local viewer and 0, 1, 2, 3 targets of each kind running, over a fixed window, beside
the whole machine's load in the same window (other processes share the cores).

  target/test-venv/bin/python bench/publish_cpu.py [--seconds 15] [--kinds rtp,whip,rtmp]
                                                  [--source test|external]

--source external feeds fieldcast H.264 RTP from a separate gst-launch encoder (1280x720,
30 fps, 2 Mbit/s) and sound from audiotestsrc, so that fieldcast's own CPU is the fan-out and
the targets without the encoder's, whose frame-to-frame variation hides a target's cost.

rtp goes to a UDP socket that discards (this script's), whip to the aiortc ingest of
tests/publish/whip_server.py (which decodes: its CPU lands on the same machine, not on
fieldcast), rtmp to nginx-rtmp recording to FLV."""

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/publish"))
import engines  # noqa: E402
from engines import Fieldcast, NginxRtmp, WhipServer, wait_for  # noqa: E402

TOKEN = "bench-token"


def machine_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def discard_udp(ports):
    """Sockets that take RTP and drop it, so the targets have a listener (no ICMP refusal)."""
    sockets = []
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        sockets.append(s)

    def drain(s):
        while True:
            try:
                s.recv(65536)
            except OSError:
                return
    for s in sockets:
        threading.Thread(target=drain, args=(s,), daemon=True).start()
    return sockets


def targets_toml(kind, count, work, engines_up):
    text = ""
    for i in range(count):
        if kind == "rtp":
            port = engines.free_port(socket.SOCK_DGRAM, pair=True)
            engines_up.extend(discard_udp([port, port + 2]))
            text += f'[[publish]]\nurl = "rtp://127.0.0.1:{port}"\nname = "rtp{i}"\n'
        elif kind == "whip":
            text += f'[[publish]]\nurl = "{engines_up[0].base}/whip"\ntoken = "{TOKEN}"\nname = "whip{i}"\n'
        elif kind == "rtmp":
            text += f'[[publish]]\nurl = "{engines_up[0].url}/bench{i}"\nname = "rtmp{i}"\n'
    return text


EXTERNAL_AUDIO = "audiotestsrc is-live=true wave=sine volume=0.2"


def external_sender(work):
    """A separate encoder sending H.264 RTP to loopback; returns it and fieldcast's pipeline."""
    port = engines.free_port(socket.SOCK_DGRAM)
    sender = engines.Process("sender", [
        # Snow: every frame new, so the stream really is 2 Mbit/s (a still pattern is far less).
        "gst-launch-1.0", "-q", "videotestsrc", "is-live=true", "pattern=snow",
        "!", "video/x-raw,width=1280,height=720,framerate=30/1",
        "!", "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "bitrate=2000", "key-int-max=60",
        "!", "rtph264pay", "pt=96", "mtu=1200", "config-interval=-1",
        "!", "udpsink", "host=127.0.0.1", f"port={port}"], work)
    caps = "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
    return sender, f'udpsrc address=127.0.0.1 port={port} caps="{caps}" ! rtph264depay ! {{rtp}}'


def measure(work, kind, count, seconds, engines_up, pipeline, audio):
    fieldcast = Fieldcast(work, targets_toml(kind, count, work, engines_up), name=f"fieldcast-{kind}{count}",
                          pipeline=pipeline, audio=audio)
    try:
        if count:
            wait_for(f"{count} {kind} targets live",
                     lambda: all(t["state"] == "live" for t in fieldcast.status()["publish"]), 20)
        time.sleep(3)  # settle: first keyframes, connections
        cpu0, (busy0, total0), t0 = fieldcast.cpu_seconds(), machine_busy(), time.monotonic()
        time.sleep(seconds)
        cpu1, (busy1, total1), t1 = fieldcast.cpu_seconds(), machine_busy(), time.monotonic()
        status = fieldcast.status()
        states = [t["state"] for t in status["publish"]]
        dropped = sum(t["frames_dropped"] for t in status["publish"])
        kbps = status["stream"]["bitrate_kbps"]
    finally:
        fieldcast.stop()
    cores = os.cpu_count()
    return {
        "kind": kind if count else "-",
        "targets": count,
        "fieldcast_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "machine_busy_pct": 100 * (busy1 - busy0) / max(1, total1 - total0) * cores,
        "loadavg": Path("/proc/loadavg").read_text().split()[0],
        "states": ",".join(states) or "-",
        "dropped": dropped,
        "kbps": kbps,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--kinds", default="rtp,whip,rtmp")
    parser.add_argument("--source", choices=["test", "external"], default="test")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="fieldcast-publish-cpu-")
    pipeline, audio = "test", "auto"
    if args.source == "external":
        _, pipeline = external_sender(work)
        audio = EXTERNAL_AUDIO
    try:
        rows = [measure(work, "-", 0, args.seconds, [], pipeline, audio)]
        for kind in args.kinds.split(","):
            up = []
            if kind == "whip":
                up.append(WhipServer(work, TOKEN, sys.executable))
            elif kind == "rtmp":
                up.append(NginxRtmp(work))
            for count in (1, 2, 3):
                rows.append(measure(work, kind, count, args.seconds, up, pipeline, audio))
            for thing in up:
                (thing.close if isinstance(thing, socket.socket) else thing.stop)()
    finally:
        engines.stop_all()
    source = ("test pipeline (x264enc 1280x720@30 in fieldcast, Opus)" if args.source == "test"
              else "external H.264 RTP 1280x720@30 2 Mbit/s (encoder not in fieldcast), Opus")
    print(f"\nfieldcast CPU, {source}, no local viewer, "
          f"{args.seconds:.0f} s windows, {os.cpu_count()} cores shared with other work:")
    print(f"{'kind':5} {'targets':>7} {'fieldcast CPU':>14} {'per target':>11} {'machine busy':>13} {'load':>5} "
          f"{'stream':>10}  states")
    base = rows[0]["fieldcast_cpu_pct"]
    for row in rows:
        per = (row["fieldcast_cpu_pct"] - base) / row["targets"] if row["targets"] else 0
        print(f"{row['kind']:5} {row['targets']:>7} {row['fieldcast_cpu_pct']:>13.1f}% {per:>10.1f}% "
              f"{row['machine_busy_pct']:>12.0f}% {row['loadavg']:>5} {row['kbps']:>5.0f} kbit/s  "
              f"{row['states']} (dropped {row['dropped']})")
    print("CPU is % of one core (user + system of the fieldcast process); machine busy is all cores "
          "together, every process (the engines and, with --source external, the encoder included).")


if __name__ == "__main__":
    main()
