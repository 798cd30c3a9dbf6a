#!/usr/bin/env python3
"""fieldcast publishing the same encode to real engines, on this machine only:

  janus        rtp into a Janus streaming mountpoint; an aiortc viewer watches *through
               Janus* and decodes; then Janus is stopped and started again while an aiortc
               viewer watches fieldcast itself: the target reconnects within 10 s of Janus
               being back, status shows the reconnect, the local viewer keeps its frame rate
  janus-srtp   the same mountpoint taking SRTP with a configured key
  whip         into an independent aiortc + aiohttp WHIP ingest (tests/publish/whip_server.py):
               a 307 on the first POST followed, bearer token, 201 + Location, PATCH with
               If-Match, DELETE on stop; it decodes >= 60 frames at the encoder's size
  rtmp         into nginx with the RTMP module, recording: ffprobe finds H.264 at the
               encoder's size and frame rate and AAC, lasting as long as it was streamed (10 %);
               then nginx is stopped and started again: the target reconnects, status says so
  whip-faults  the ingest killed and started again under a watching local viewer; then an
               ingest refusing the token: a clear error, and a backoff, not a retry storm

Run with the test virtualenv's python (aiortc, aiohttp): target/test-venv/bin/python
tests/publish/run.py [CASE...]; no case runs them all. Prints the figures it measured."""

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import engines  # noqa: E402
import janus_viewer  # noqa: E402
from engines import Fieldcast, Janus, NginxRtmp, WhipServer, ffprobe, wait_for  # noqa: E402

ROOT = engines.ROOT
PYTHON = sys.executable
SOURCE_FPS = 30


def log(message):
    print(f"[publish] {message}", flush=True)


def local_viewer(base, seconds):
    """An aiortc viewer of fieldcast itself, in its own process, measuring its frame rate."""
    return subprocess.Popen([PYTHON, str(ROOT / "tests/loss/aiortc_viewer.py"), base,
                             "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)


def viewer_result(proc, within):
    out, _ = proc.communicate(timeout=within)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"the local viewer said nothing useful: {out[-300:]!r}")


def check_local_viewer(proc, outage):
    """The aiortc viewer watching fieldcast itself played on through `outage` (an engine
    stopped and back): its figure is logged, and it kept the frame rate without freezing."""
    local = viewer_result(proc, 40)
    log(f"FIGURE local viewer during the {outage}: {local.get('fps')} fps, "
        f"{local.get('freezes')} freezes, longest gap {local.get('longest_gap_s')} s")
    assert local.get("fps", 0) >= 0.9 * SOURCE_FPS, f"the local viewer's frame rate fell: {local}"
    assert local.get("freeze_s", 99) < 0.5, f"the local viewer froze: {local}"


def check_through_janus(janus, fieldcast, seconds=4):
    seen = asyncio.run(janus_viewer.watch(janus.base, seconds))
    log(f"through Janus: {seen}")
    assert "error" not in seen, seen["error"]
    assert seen["frames"] >= 60, f"only {seen['frames']} frames decoded through Janus in {seconds} s"
    pipeline = fieldcast.status()["pipeline"]
    assert (seen["width"], seen["height"]) == (pipeline["width"], pipeline["height"]), \
        f"Janus delivered {seen['width']}x{seen['height']}, the encoder makes {pipeline['width']}x{pipeline['height']}"
    assert seen["audio_frames"] > 0, "no sound came through Janus"
    return seen


def case_janus(work):
    janus = Janus(work)
    fieldcast = Fieldcast(work, f'[[publish]]\nurl = "rtp://127.0.0.1:{janus.video_port}"\nname = "janus"\n')
    try:
        wait_for("the rtp target live", lambda: fieldcast.target()["state"] == "live", 10)
        check_through_janus(janus, fieldcast)
        assert "fieldcast_publish_up{" in fieldcast.metrics(), "no publish metrics"

        # Janus goes away and comes back while a local viewer watches fieldcast.
        viewer = local_viewer(fieldcast.base, 14)
        wait_for("the local viewer connected",
                 lambda: any(v["frames_sent"] > 0 for v in fieldcast.status()["viewers"]), 15)
        time.sleep(2)
        janus.stop()
        stopped = time.monotonic()
        down = wait_for("the target noticing Janus is gone",
                        lambda: (t := fieldcast.target())["state"] != "live" and t["last_error"] and t, 10)
        log(f"Janus stopped: target {down['state']} after {time.monotonic() - stopped:.1f} s: {down['last_error']}")
        time.sleep(max(0.0, 4 - (time.monotonic() - stopped)))
        janus.start()
        back, back_wall = time.monotonic(), time.time()
        seen = asyncio.run(janus_viewer.watch(janus.base, 2, first_frame_within=15))
        live = fieldcast.target()
        assert "error" not in seen, f"after Janus came back: {seen['error']}"
        # The viewer joined as soon as Janus answered: its join (about 1.5 s) is included.
        frames_again = seen["first_frame_at"] - back
        log(f"FIGURE janus back -> rtp target live again (RTP flowing 0.5 s unrefused): "
            f"{live['since_unix_ms'] / 1000 - back_wall:.2f} s")
        log(f"FIGURE janus back -> first frame decoded through it: {frames_again:.2f} s "
            f"(the viewer's own join {seen['first_frame_s']:.2f} s of it); "
            f"target {live['state']}, attempts {live['attempts']}, reconnects {live['reconnects']}")
        assert live["state"] == "live" and live["reconnects"] >= 1, f"status shows no reconnect: {live}"
        assert frames_again <= 10, f"frames flowed again only {frames_again:.1f} s after Janus was back"
        check_local_viewer(viewer, "outage and reconnect")
    except AssertionError:
        log("fieldcast log:\n" + fieldcast.process.tail(30))
        raise
    finally:
        fieldcast.stop()
        janus.stop()


def case_janus_srtp(work):
    key = base64.b64encode(os.urandom(30)).decode()
    janus = Janus(work, srtp=key)
    fieldcast = Fieldcast(work, f'[[publish]]\nurl = "srtp://127.0.0.1:{janus.video_port}"\n'
                                f'srtp_key = "{key}"\n')
    try:
        wait_for("the srtp target live", lambda: fieldcast.target()["state"] == "live", 10)
        check_through_janus(janus, fieldcast, seconds=3)
        assert key not in fieldcast.get("/api/admin/status", admin=True), "the SRTP key is in status"
    finally:
        fieldcast.stop()
        janus.stop()


def whip_toml(server, token, name="whip"):
    return f'[[publish]]\nurl = "{server.base}/whip"\ntoken = "{token}"\nname = "{name}"\n'


def ingest_session(server, min_frames, within):
    """The ingest session that has decoded at least `min_frames`."""
    def enough():
        sessions = server.record()["sessions"].values()
        return next((s for s in sessions if s["frames"] >= min_frames), None)
    return wait_for(f"{min_frames} frames decoded at the WHIP ingest", enough, within)


def case_whip(work):
    token = "whip-test-token-1234"
    server = WhipServer(work, token, PYTHON)
    fieldcast = Fieldcast(work, whip_toml(server, token))
    wait_for("the whip target live", lambda: fieldcast.target()["state"] == "live", 15)
    session = ingest_session(server, 60, 10)
    pipeline = fieldcast.status()["pipeline"]
    log(f"at the ingest: {session}")
    assert (session["width"], session["height"]) == (pipeline["width"], pipeline["height"]), \
        f"the ingest decoded {session['width']}x{session['height']}, the encoder makes {pipeline['width']}x{pipeline['height']}"
    assert session["audio_packets"] > 0, "no sound reached the ingest"
    assert session["offer_sendonly"], "the offer was not send-only"
    record = server.record()
    assert record["redirects"] >= 1, "the first POST was not redirected"
    ingest = [p for p in record["posts"] if p["answer"] == 201]
    assert ingest and ingest[0]["authorization"] and ingest[0]["content_type"] == "application/sdp", record["posts"]
    assert record["unauthorized"] == 0, "a POST went without the token"
    for patch in record["patches"]:
        assert patch["if_match"], f"a PATCH without If-Match: {patch}"
    # The ingest loses its picture: its PLI becomes one (rate-limited) encoder request.
    requested_before = fieldcast.status()["stream"]["keyframe_requests_sent"]
    with urllib.request.urlopen(urllib.request.Request(f"{server.base}/pli", method="POST"), timeout=5) as r:
        assert json.loads(r.read())["sent"] >= 1, "the ingest had no video source to send a PLI to"
    wait_for("the target counting the engine's keyframe request",
             lambda: fieldcast.target()["keyframe_requests"] >= 1, 5)
    wait_for("a keyframe request reaching the encoder",
             lambda: fieldcast.status()["stream"]["keyframe_requests_sent"] > requested_before, 5)
    status = fieldcast.target()
    assert status["bytes_sent"] > 20_000 and status["last_error"] is None, status
    assert status["frames_dropped"] <= 5, f"the target lost frames while connecting or streaming: {status}"
    fieldcast.stop()
    deleted = wait_for("DELETE at the ingest when fieldcast stopped", lambda: server.record()["deletes"] >= 1, 5)
    assert deleted
    assert token not in fieldcast.process.tail(400), "the token is in the log"


def case_whip_faults(work):
    token = "whip-test-token-1234"
    server = WhipServer(work, token, PYTHON)
    fieldcast = Fieldcast(work, whip_toml(server, token))
    try:
        wait_for("the whip target live", lambda: fieldcast.target()["state"] == "live", 15)
        ingest_session(server, 30, 10)
        viewer = local_viewer(fieldcast.base, 16)
        wait_for("the local viewer connected",
                 lambda: any(v["frames_sent"] > 0 for v in fieldcast.status()["viewers"]), 15)
        time.sleep(2)
        server.stop(signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(4)
        server.start()
        back_wall = time.time()
        back = time.monotonic()
        session = ingest_session(server, 1, 15)
        frames_again = session["first_frame_at"] - back_wall
        live = wait_for("the target live again", lambda: (t := fieldcast.target())["state"] == "live" and t, 10)
        log(f"FIGURE whip ingest back -> whip target live again (connected): "
            f"{live['since_unix_ms'] / 1000 - back_wall:.2f} s")
        log(f"FIGURE whip ingest back -> first frame decoded there: {frames_again:.2f} s "
            f"(ingest down {back - killed:.1f} s); attempts {live['attempts']}, reconnects {live['reconnects']}, "
            f"last error {live['last_error']!r}")
        assert frames_again <= 10, f"frames reached the ingest only {frames_again:.1f} s after it was back"
        assert live["reconnects"] >= 1, f"status shows no reconnect: {live}"
        check_local_viewer(viewer, "whip outage and reconnect")
    except AssertionError:
        log("fieldcast log:\n" + fieldcast.process.tail(30))
        raise
    finally:
        fieldcast.stop()
        server.stop()

    # An ingest that refuses the token: a clear error, and few tries.
    server = WhipServer(work, "the-right-token", PYTHON)
    fieldcast = Fieldcast(work, whip_toml(server, "a-wrong-token"), name="fieldcast-refused")
    watched = 16
    time.sleep(watched)
    record, status = server.record(), fieldcast.target()
    log(f"refused for {watched} s: {len(record['posts'])} POSTs, status {status['state']}: {status['last_error']}")
    assert record["unauthorized"] >= 1, "the ingest never saw the wrong token"
    assert len(record["posts"]) <= 4, f"{len(record['posts'])} POSTs in {watched} s: a retry storm"
    assert status["state"] in ("retrying", "connecting") and "refused the token" in (status["last_error"] or ""), status
    log_text = fieldcast.process.tail(200)
    assert "refused the token" in log_text, "the log does not say the token was refused"
    assert "a-wrong-token" not in log_text, "the token is in the log"


def case_rtmp(work):
    nginx = NginxRtmp(work)
    key = "fieldcast-stream-key"
    fieldcast = Fieldcast(work, f'[[publish]]\nurl = "{nginx.url}/{key}"\nname = "nginx"\n')
    try:
        status = wait_for("the rtmp target live", lambda: (t := fieldcast.target())["state"] == "live" and t, 15)
        assert key not in json.dumps(fieldcast.status()), "the stream key is in status"
        # The recording starts with the first FLV bytes, LIVE_AFTER (0.5 s) before "live".
        live_since = status["since_unix_ms"] / 1000 - 0.5
        time.sleep(10)
        pipeline = fieldcast.status()["pipeline"]
        fieldcast.stop()
        streamed = time.time() - live_since
        recording = nginx.records / f"{key}.flv"
        wait_for("nginx closing the recording", lambda: recording.exists() and recording.stat().st_size > 100_000, 5)
        time.sleep(0.5)
        probe = ffprobe(recording)
        streams = {s["codec_type"]: s for s in probe["streams"]}
        video, audio = streams.get("video"), streams.get("audio")
        duration = float(probe["format"]["duration"])
        num, den = (int(x) for x in video["avg_frame_rate"].split("/"))
        log(f"ffprobe: video {video['codec_name']} {video['width']}x{video['height']} "
            f"@ {num / den:.2f} fps; audio {audio and audio['codec_name']} {audio and audio.get('sample_rate')} Hz; "
            f"{duration:.2f} s recorded, {streamed:.2f} s streamed")
        assert video["codec_name"] == "h264", video
        assert (video["width"], video["height"]) == (pipeline["width"], pipeline["height"]), video
        assert abs(num / den - pipeline["fps"]) <= 0.05 * pipeline["fps"], f"{num}/{den} fps, the encoder makes {pipeline['fps']}"
        assert audio and audio["codec_name"] == "aac", f"no AAC in the recording: {probe['streams']}"
        assert abs(duration - streamed) <= 0.1 * streamed, f"{duration:.2f} s recorded of {streamed:.2f} s streamed"

        # nginx goes away and comes back: the target reconnects.
        fieldcast = Fieldcast(work, f'[[publish]]\nurl = "{nginx.url}/{key}-2"\nname = "nginx"\n', name="fieldcast-2")
        wait_for("the rtmp target live", lambda: fieldcast.target()["state"] == "live", 15)
        nginx.stop()
        down = wait_for("the target noticing nginx is gone",
                        lambda: (t := fieldcast.target())["state"] != "live" and t["last_error"] and t, 10)
        log(f"nginx stopped: target {down['state']}: {down['last_error']}")
        time.sleep(2)
        nginx.start()
        back = time.monotonic()
        live = wait_for("the rtmp target live again", lambda: (t := fieldcast.target())["state"] == "live" and t, 15)
        again = time.monotonic() - back
        log(f"FIGURE nginx back -> rtmp target live again: {again:.2f} s (live means FLV flowing for 0.5 s); "
            f"attempts {live['attempts']}, reconnects {live['reconnects']}")
        assert again <= 10 and live["reconnects"] >= 1, live
    except AssertionError:
        log("fieldcast log:\n" + fieldcast.process.tail(30))
        raise


CASES = {
    "janus": case_janus,
    "janus-srtp": case_janus_srtp,
    "rtmp": case_rtmp,
    "whip": case_whip,
    "whip-faults": case_whip_faults,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", choices=[[], *CASES], default=[])
    args = parser.parse_args()
    failed = []
    for name in args.cases or CASES:
        work = tempfile.mkdtemp(prefix=f"fieldcast-publish-{name}-")
        started = time.monotonic()
        log(f"{name}: start (work dir {work})")
        try:
            CASES[name](work)
        except Exception as error:
            failed.append(name)
            log(f"{name}: FAILED after {time.monotonic() - started:.0f} s: {error}")
        else:
            log(f"{name}: ok in {time.monotonic() - started:.0f} s")
        finally:
            engines.stop_all()
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
