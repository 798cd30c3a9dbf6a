"""A viewer that watches through Janus: Janus's HTTP API (create, attach the streaming
plugin, watch, answer with start) and an aiortc PeerConnection that decodes what comes."""

import asyncio
import itertools
import time

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

_transactions = itertools.count()


async def _post(http, url, body):
    body["transaction"] = f"t{next(_transactions)}"
    async with http.post(url, json=body) as response:
        reply = await response.json(content_type=None)
    if reply.get("janus") not in ("success", "ack"):
        raise RuntimeError(f"POST {url}: {reply}")
    return reply


async def watch(base, seconds, first_frame_within=10.0, mountpoint=1):
    """Decodes for `seconds` after the first picture; returns frames, size and sound."""
    result = {"frames": 0, "audio_frames": 0}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=40)) as http:
        root = f"{base}/janus"
        session = (await _post(http, root, {"janus": "create"}))["data"]["id"]
        session_url = f"{root}/{session}"
        handle = (await _post(http, session_url,
                              {"janus": "attach", "plugin": "janus.plugin.streaming"}))["data"]["id"]
        await _post(http, f"{session_url}/{handle}",
                    {"janus": "message", "body": {"request": "watch", "id": mountpoint}})
        offer = None
        deadline = time.monotonic() + 10
        while offer is None and time.monotonic() < deadline:
            async with http.get(f"{session_url}?maxev=10") as response:
                events = await response.json(content_type=None)
            for event in events if isinstance(events, list) else [events]:
                error = event.get("plugindata", {}).get("data", {}).get("error")
                if error:
                    raise RuntimeError(f"Janus refused the watch: {error}")
                offer = offer or event.get("jsep", {}).get("sdp")
        if offer is None:
            raise RuntimeError("Janus sent no offer within 10 s")
        pc = RTCPeerConnection()
        first = asyncio.Event()
        times = []

        @pc.on("track")
        def on_track(track):
            async def read():
                while True:
                    try:
                        frame = await track.recv()
                    except Exception:
                        return
                    if track.kind == "video":
                        result["width"], result["height"] = frame.width, frame.height
                        times.append(time.monotonic())
                        first.set()
                    else:
                        result["audio_frames"] += 1

            asyncio.ensure_future(read())

        started = time.monotonic()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await _post(http, f"{session_url}/{handle}", {
            "janus": "message", "body": {"request": "start"},
            "jsep": {"type": "answer", "sdp": pc.localDescription.sdp}})

        async def keep_polling():
            while True:
                try:
                    async with http.get(f"{session_url}?maxev=10") as response:
                        await response.read()
                except Exception:
                    await asyncio.sleep(0.5)

        poller = asyncio.ensure_future(keep_polling())
        try:
            await asyncio.wait_for(first.wait(), first_frame_within)
            result["first_frame_s"] = round(times[0] - started, 3)
            result["first_frame_at"] = times[0]
            window_start = time.monotonic()
            await asyncio.sleep(seconds)
            result["frames"] = sum(1 for t in times if t >= window_start)
            result["fps"] = round(result["frames"] / seconds, 1)
        except asyncio.TimeoutError:
            result["error"] = f"no picture through Janus within {first_frame_within} s"
        finally:
            poller.cancel()
            await pc.close()
            try:
                await _post(http, session_url, {"janus": "destroy"})
            except Exception:
                pass
    return result
