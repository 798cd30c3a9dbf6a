#!/usr/bin/env python3
"""An aiortc WHEP viewer that measures how smoothly it plays: after its first decoded frame
it records (from a second later) when each further frame comes out of the decoder for a fixed window, and prints
as JSON the frame rate and the freezes (see `freezes`), plus the repairs it asked for (NACK,
PLI) and how many retransmissions reached it on an RTX SSRC. Run by tests/loss/run.py inside
a network namespace."""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc import rtcrtpreceiver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nat"))
from viewer import join, leave  # noqa: E402  (the NAT tests' WHEP viewer)

SOURCE_FPS = 30.0
SETTLE_S = 1.0


def freezes(times, fps=SOURCE_FPS):
    """Gaps between decoded frames longer than max(3 frame intervals, 1 interval + 150 ms),
    the definition of the W3C WebRTC stats (freezeCount) applied to the source frame rate:
    (count, total seconds, longest gap in seconds)."""
    interval = 1.0 / fps
    limit = max(3 * interval, interval + 0.150)
    gaps = [b - a for a, b in zip(times, times[1:])]
    frozen = [gap for gap in gaps if gap > limit]
    return len(frozen), sum(frozen), max(gaps, default=0.0)


class Counters:
    """Counts what the receiver sends and gets, by wrapping aiortc's own methods."""

    def __init__(self):
        self.nacks = 0
        self.nacked_packets = 0
        self.plis = 0
        self.rtx_packets = 0
        receiver = rtcrtpreceiver.RTCRtpReceiver
        send_nack, send_pli = receiver._send_rtcp_nack, receiver._send_rtcp_pli
        unwrap = rtcrtpreceiver.unwrap_rtx

        async def counted_nack(this, media_ssrc, lost):
            self.nacks += 1
            self.nacked_packets += len(lost)
            await send_nack(this, media_ssrc, lost)

        async def counted_pli(this, media_ssrc):
            self.plis += 1
            await send_pli(this, media_ssrc)

        def counted_unwrap(*args, **kwargs):
            self.rtx_packets += 1
            return unwrap(*args, **kwargs)

        receiver._send_rtcp_nack = counted_nack
        receiver._send_rtcp_pli = counted_pli
        rtcrtpreceiver.unwrap_rtx = counted_unwrap


async def watch(base, seconds, first_frame_within, rtx):
    counters = Counters()
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="recvonly")
    if not rtx:
        # Every codec but RTX: the offer asks for plain NACK resends on the media SSRC.
        codecs = RTCRtpReceiver.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() != "video/rtx"])
    times = []
    first = asyncio.Event()

    @pc.on("track")
    def on_track(track):
        async def read():
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                times.append(time.monotonic())
                first.set()

        asyncio.ensure_future(read())

    session, answer, _ = await join(pc, base)
    result = {"answer_has_rtx": "rtx/90000" in answer and "ssrc-group:FID" in answer}
    try:
        await asyncio.wait_for(first.wait(), timeout=first_frame_within)
    except asyncio.TimeoutError:
        result.update(frames=0, error=f"no frame decoded within {first_frame_within} s")
    else:
        # The test turns the loss on once the device sees this viewer playing.
        await asyncio.sleep(SETTLE_S)
        start = time.monotonic()
        await asyncio.sleep(seconds)
        window = [t for t in times if t >= start]
        count, frozen, longest = freezes([start] + window + [time.monotonic()])
        result.update(
            frames=len(window),
            seconds=seconds,
            fps=round(len(window) / seconds, 1),
            freezes=count,
            freeze_s=round(frozen, 2),
            longest_gap_s=round(longest, 2),
        )
    result.update(nacks=counters.nacks, nacked_packets=counters.nacked_packets,
                  plis=counters.plis, rtx_packets=counters.rtx_packets)
    refused = await leave(pc, session)
    if refused:
        result["delete"] = refused  # already gone: the device gave up on the session
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="http://HOST:PORT of fieldcast")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--first-frame-within", type=float, default=10)
    parser.add_argument("--no-rtx", action="store_true", help="offer no RTX")
    args = parser.parse_args()
    result = asyncio.run(watch(args.base, args.seconds, args.first_frame_within, not args.no_rtx))
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
