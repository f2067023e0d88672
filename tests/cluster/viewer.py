#!/usr/bin/env python3
"""A WHEP player (aiortc) that watches a kaigi broadcast the way a viewer
would across a cluster, and reports what it saw as one JSON line.

It POSTs its receive-only offer to `<url>/whep/<room>`, following the 307
that sends it to a node of its site, decodes the broadcast (the grey
picture and the 440 Hz tone of tests/interop/gst_whip_publisher.py), and
asks the serving node's status for the other nodes. When no picture was
decoded for `--stall` seconds (its node died), it goes on at the next node
(`?failover=1`, as the viewer page does) and records the gap between the
last frame before and the first frame after.

Prints `playing <node>` once frames arrive (the test waits for it), then,
after `--seconds`, the JSON report. Run by tests/cluster/wan.sh inside a
site's network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import aiortc_meeting as m  # noqa: E402  (frame measurements)

GREY_LUMA = 126


def http(method: str, url: str, body: bytes = b"", headers: dict | None = None, timeout: float = 10):
    """One request; redirects are returned, not followed (the caller re-POSTs)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_a, **_k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def base_of(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


class Player:
    def __init__(self, room: str) -> None:
        self.room = room
        self.pc = None
        self.video = 0
        self.audio = 0
        self.last_frame = 0.0
        self.first_frame = 0.0
        self.wrong = 0
        self.tasks: list[asyncio.Task] = []
        self.node = ""
        self.resource = ""

    async def consume(self, track) -> None:
        n = 0
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            n += 1
            if track.kind == "video":
                if abs(m.measure_background_luma(frame) - GREY_LUMA) <= m.LUMA_TOLERANCE:
                    self.video += 1
                    self.last_frame = time.monotonic()
                    if not self.first_frame:
                        self.first_frame = self.last_frame
                elif n > 10:
                    self.wrong += 1
            else:
                self.audio += 1

    async def watch(self, url: str, timeout: float = 10) -> None:
        """Connects through `url` (following redirects); raises on refusal."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        await self.close()
        # No STUN server: aiortc's default (a public one) cannot be resolved on an intranet.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        pc.on("track", lambda t: self.tasks.append(asyncio.ensure_future(self.consume(t))))
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp.encode()
        for _ in range(4):
            status, headers, body = await asyncio.to_thread(
                http, "POST", url, offer, {"Content-Type": "application/sdp"}, timeout)
            if status == 307:
                url = urllib.parse.urljoin(url, headers.get("Location") or headers.get("location"))
                continue
            break
        if status != 201:
            raise RuntimeError(f"WHEP {url} answered {status}: {body.strip()[:200]}")
        self.node = base_of(url)
        loc = headers.get("Location") or headers.get("location") or ""
        self.resource = urllib.parse.urljoin(url, loc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        self.tasks.clear()
        if self.pc is not None:
            await self.pc.close()
            self.pc = None


async def run(args: argparse.Namespace) -> dict:
    p = Player(args.room)
    start = time.monotonic()
    target = f"{args.url}/whep/{args.room}"
    if args.site:
        target += f"?site={args.site}"
    await p.watch(target)
    nodes: list[str] = []
    failovers: list[dict] = []
    announced = False
    last_second = -1
    end = start + args.seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.1)
        now = time.monotonic()
        second = int(now - start)
        if second != last_second:
            last_second = second
            print(f"t={second}s video={p.video} wrong={p.wrong} audio={p.audio} node={p.node}",
                  file=sys.stderr, flush=True)
        if p.first_frame and not announced:
            announced = True
            print(f"playing {p.node}", flush=True)
            status, _, body = await asyncio.to_thread(
                http, "GET", f"{p.node}/watch/{args.room}/status")
            if status == 200:
                nodes = json.loads(body).get("nodes", [])
        if p.first_frame and now - p.last_frame > args.stall:
            # The node stopped: the next one (this site's first) takes over.
            lost_at, dead = p.last_frame, p.node
            noticed = time.monotonic()
            for node in [n for n in nodes if n != dead]:
                try:
                    # A node that does not answer soon is as good as dead.
                    await p.watch(f"{node}/whep/{args.room}?failover=1", timeout=3)
                    break
                except Exception as e:  # noqa: BLE001  (tries the next node)
                    print(f"failover to {node}: {e}", file=sys.stderr, flush=True)
            else:
                raise RuntimeError(f"no node took over from {dead} (known: {nodes})")
            answered = time.monotonic()
            before = p.video
            while p.video == before and time.monotonic() < lost_at + 15:
                await asyncio.sleep(0.05)
            failovers.append({"from": dead, "to": p.node,
                              "noticed_s": round(noticed - lost_at, 2),
                              "answered_s": round(answered - lost_at, 2),
                              "gap_s": round(time.monotonic() - lost_at, 2) if p.video > before else None})
            status, _, body = await asyncio.to_thread(
                http, "GET", f"{p.node}/watch/{args.room}/status")
            if status == 200:
                nodes = json.loads(body).get("nodes", [])
            end = max(end, time.monotonic() + 3)
    report = {
        "name": args.name,
        "node": p.node,
        "video_frames": p.video,
        "audio_frames": p.audio,
        "wrong_frames": p.wrong,
        "first_frame_s": round(p.first_frame - start, 2) if p.first_frame else None,
        "failovers": failovers,
    }
    if p.resource:
        await asyncio.to_thread(http, "DELETE", p.resource)
    await p.close()
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="http://10.99.1.1:18080 (any node)")
    ap.add_argument("--room", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--stall", type=float, default=1.5)
    ap.add_argument("--site", default="")
    ap.add_argument("--name", default="viewer")
    ap.add_argument("--address", default="", help="the only local address ICE uses (e.g. 127.0.0.1)")
    args = ap.parse_args()
    if args.address:
        m.patch_loopback(args.address)
    try:
        report = asyncio.run(run(args))
    except Exception as e:  # noqa: BLE001  (reported as the result)
        report = {"name": args.name, "error": str(e)}
    print(json.dumps(report), flush=True)
    return 0 if "error" not in report else 1


if __name__ == "__main__":
    sys.exit(main())
