#!/usr/bin/env python3
"""A WHEP viewer built on aiortc, an implementation independent of fieldcast's own WebRTC
stack. It discovers the ICE servers the way a WHEP player does (OPTIONS, then the Link
headers), joins, counts decoded video frames, reports the ICE pair it used as JSON on
stdout, and leaves with DELETE. Run by tests/nat/run.py inside a network namespace."""

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.error
import urllib.request

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

LINK = re.compile(r'<([^>]+)>\s*;\s*rel="ice-server"(.*)')
PARAM = re.compile(r';\s*([a-z-]+)="([^"]*)"')


def ice_servers(base):
    """The servers advertised in `Link: <url>; rel="ice-server"` headers of OPTIONS /whep."""
    request = urllib.request.Request(f"{base}/whep", method="OPTIONS")
    with urllib.request.urlopen(request, timeout=5) as response:
        links = response.headers.get_all("Link") or []
    servers = []
    for header in links:
        for value in header.split(","):
            match = LINK.search(value.strip())
            if not match:
                continue
            params = dict(PARAM.findall(match.group(2)))
            servers.append(
                RTCIceServer(
                    urls=match.group(1),
                    username=params.get("username"),
                    credential=params.get("credential"),
                )
            )
    return servers


def http(method, url, body=None, content_type=None):
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.status, headers, response.read().decode()


async def join(pc, base):
    """Offers, POSTs the offer to /whep and applies the answer. Returns the session's URL,
    the answer's SDP and when the offer was posted (time.monotonic)."""
    await pc.setLocalDescription(await pc.createOffer())
    posted = time.monotonic()
    status, headers, answer = http("POST", f"{base}/whep", pc.localDescription.sdp.encode(), "application/sdp")
    if status != 201:
        raise SystemExit(f"POST /whep answered {status}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return base + headers["location"], answer, posted


async def leave(pc, session):
    """DELETEs the session and closes the connection. None, or what DELETE got instead: the
    status when the device had already ended the session, or why it could not be sent."""
    try:
        http("DELETE", session)
        return None
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError) as error:
        return str(error)
    finally:
        await pc.close()


def candidate_pair(pc):
    """(local type, remote type, protocol) of the pair ICE nominated."""
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        nominated = getattr(ice._connection, "_nominated", {})
        for pair in nominated.values():
            local, remote = pair.local_candidate, pair.remote_candidate
            return local.type, remote.type, local.transport
    return None


async def watch(base, frames_wanted, seconds):
    servers = ice_servers(base)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    pc.addTransceiver("video", direction="recvonly")
    decoded = 0
    first_frame = None
    done = asyncio.Event()

    @pc.on("track")
    def on_track(track):
        async def read():
            nonlocal decoded, first_frame
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                decoded += 1
                if first_frame is None:
                    first_frame = time.monotonic()
                if decoded >= frames_wanted:
                    done.set()

        asyncio.ensure_future(read())

    session, answer, posted = await join(pc, base)
    try:
        await asyncio.wait_for(done.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
    result = {
        "ice_servers": [s.urls for s in servers],
        "frames": decoded,
        "first_frame_ms": None if first_frame is None else round((first_frame - posted) * 1000),
        "pair": candidate_pair(pc),
        "answer_candidates": [l[12:] for l in answer.splitlines() if l.startswith("a=candidate:")],
    }
    refused = await leave(pc, session)
    if refused:
        result["delete"] = refused  # already gone: the device gave up on the session
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="http://HOST:PORT of fieldcast")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    result = asyncio.run(watch(args.base, args.frames, args.seconds))
    print(json.dumps(result))
    sys.exit(0 if result["frames"] >= args.frames else 1)


if __name__ == "__main__":
    main()
