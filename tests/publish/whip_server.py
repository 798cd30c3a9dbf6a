#!/usr/bin/env python3
"""An independent WHIP ingest (and WHEP egress) for the publish tests, on a different stack:
aiohttp for HTTP, aiortc for WebRTC. It checks what RFC 9725 asks of a WHIP client and keeps
a record the test reads at GET /record:

  POST /whip            307 to /whip/ingest (a client must follow it, method and body kept)
  POST /whip/ingest     needs `Authorization: Bearer TOKEN` (401 otherwise) and
                        application/sdp (415); 201 with the answer, a relative Location,
                        an ETag and an ice-server Link
  PATCH /whip/s/ID      If-Match checked (412), application/trickle-ice-sdpfrag (415);
                        candidates taken (204)
  DELETE /whip/s/ID     200, the session closed
  POST /whep            a WHEP viewer of what was ingested (for the overflow test)
  POST /pli             every ingest session reports picture loss (RTCP PLI) to its sender

Every ingest session decodes what it receives (frames, size, sound packets)."""

import argparse
import asyncio
import json
import time
import uuid

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.sdp import candidate_from_sdp

record = {"posts": [], "redirects": 0, "unauthorized": 0, "patches": [], "deletes": 0,
          "sessions": {}, "whep": []}
sessions = {}
relay = MediaRelay()
ingested = {"video": None, "audio": None}
CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "content-type, authorization, if-match",
        "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
        "Access-Control-Expose-Headers": "location, etag, link"}


def problem(status, detail, headers=None):
    return web.json_response({"title": detail}, status=status, headers={**CORS, **(headers or {})},
                             content_type="application/problem+json")


async def redirect(request):
    record["redirects"] += 1
    return web.Response(status=307, headers={**CORS, "Location": "/whip/ingest"})


async def ingest(request):
    body = await request.text()
    entry = {"at": time.time(), "authorization": bool(request.headers.get("Authorization")),
             "content_type": request.headers.get("Content-Type")}
    record["posts"].append(entry)
    if request.headers.get("Authorization") != f"Bearer {request.app['token']}":
        record["unauthorized"] += 1
        entry["answer"] = 401
        return problem(401, "bad token", {"WWW-Authenticate": 'Bearer realm="whip"'})
    if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/sdp":
        entry["answer"] = 415
        return problem(415, "expected application/sdp")
    session_id = uuid.uuid4().hex
    state = {"frames": 0, "audio_packets": 0, "width": None, "height": None,
             "first_frame_at": None, "last_frame_at": None, "connected": False, "closed": False,
             "offer_sendonly": "a=sendonly" in body, "patched_candidates": 0}
    record["sessions"][session_id] = state
    pc = RTCPeerConnection()
    etag = f'"{uuid.uuid4().hex}"'
    sessions[session_id] = {"pc": pc, "etag": etag}

    @pc.on("connectionstatechange")
    async def on_state():
        state["connected"] = state["connected"] or pc.connectionState == "connected"

    @pc.on("track")
    def on_track(track):
        ingested[track.kind] = track

        async def read():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                now = time.time()
                if track.kind == "video":
                    state["frames"] += 1
                    state["width"], state["height"] = frame.width, frame.height
                    state["first_frame_at"] = state["first_frame_at"] or now
                    state["last_frame_at"] = now
                else:
                    state["audio_packets"] += 1

        asyncio.ensure_future(read())

    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    entry["answer"] = 201
    return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp",
                        headers={**CORS, "Location": f"s/{session_id}", "ETag": etag,
                                 "Link": '<stun:stun.invalid:3478>; rel="ice-server"'})


async def patch(request):
    session_id = request.match_info["id"]
    session = sessions.get(session_id)
    body = await request.text()
    record["patches"].append({"id": session_id, "if_match": request.headers.get("If-Match"),
                              "body": body[:2000]})
    if session is None:
        return problem(404, "no such session")
    if request.headers.get("If-Match") not in (None, "*", session["etag"]):
        return problem(412, "ETag mismatch")
    if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/trickle-ice-sdpfrag":
        return problem(415, "expected application/trickle-ice-sdpfrag")
    if "a=ice-ufrag:" in body and session["pc"].remoteDescription and \
            f"a=ice-ufrag:{body.split('a=ice-ufrag:')[1].split()[0]}" not in session["pc"].remoteDescription.sdp:
        # aiortc cannot restart ICE: RFC 9725 lets the endpoint refuse, and the client starts anew.
        return problem(422, "ICE restart not supported")
    for line in body.splitlines():
        if line.startswith("a=candidate:"):
            candidate = candidate_from_sdp(line[2:].split(":", 1)[1])
            candidate.sdpMid = "0"
            try:
                await session["pc"].addIceCandidate(candidate)
                record["sessions"][session_id]["patched_candidates"] += 1
            except Exception:
                pass
    return web.Response(status=204, headers=CORS)


async def delete(request):
    session_id = request.match_info["id"]
    session = sessions.pop(session_id, None)
    if session is None:
        return problem(404, "no such session")
    record["deletes"] += 1
    record["sessions"][session_id]["closed"] = True
    await session["pc"].close()
    return web.Response(status=200, headers=CORS)


async def whep(request):
    """A WHEP viewer of the ingested stream: what an overflowing viewer is sent to."""
    offer = await request.text()
    record["whep"].append({"at": time.time(), "origin": request.headers.get("Origin")})
    if ingested["video"] is None:
        return problem(503, "nothing ingested yet", {"Retry-After": "1"})
    pc = RTCPeerConnection()
    pc.addTrack(relay.subscribe(ingested["video"]))
    if ingested["audio"] is not None and "m=audio" in offer:
        pc.addTrack(relay.subscribe(ingested["audio"]))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    session_id = uuid.uuid4().hex
    sessions[session_id] = {"pc": pc, "etag": '"whep"'}
    return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp",
                        headers={**CORS, "Location": f"/whep/{session_id}"})


async def pli(request):
    """Picture loss at the ingest: a PLI from every video receiver to the sender's SSRC."""
    sent = 0
    for session in list(sessions.values()):
        for receiver in session["pc"].getReceivers():
            if receiver.track and receiver.track.kind == "video":
                for source in receiver.getSynchronizationSources():
                    await receiver._send_rtcp_pli(source.source)
                    sent += 1
    return web.json_response({"sent": sent})


async def options(request):
    return web.Response(status=204, headers={**CORS, "Accept-Post": "application/sdp"})


async def get_record(request):
    return web.json_response(record)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    app = web.Application()
    app["token"] = args.token
    app.router.add_post("/whip", redirect)
    app.router.add_post("/whip/ingest", ingest)
    app.router.add_patch("/whip/s/{id}", patch)
    app.router.add_delete("/whip/s/{id}", delete)
    app.router.add_post("/whep", whep)
    app.router.add_route("OPTIONS", "/{tail:.*}", options)
    app.router.add_post("/pli", pli)
    app.router.add_get("/record", get_record)
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda *_: print("ready", flush=True))


if __name__ == "__main__":
    main()
