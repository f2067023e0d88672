#!/usr/bin/env python3
"""Interop test: aiortc clients hold a meeting through kaigi.

Two or three aiortc clients join the same room over kaigi's WebSocket
signaling protocol v1 (docs/protocol.md).  Each one publishes a generated
tone (Opus) and a generated moving picture (VP8 by default) on its `publish`
RTCPeerConnection, answers the server's offers on its `subscribe`
RTCPeerConnection, and decodes what it receives there.

Pass criteria, for every client and every *other* participant:
  * at least --min-video decoded video frames whose picture is the one that
    participant sends (each client paints a different background luma, so a
    track labelled with the wrong participant id is caught), and
  * at least --min-audio decoded audio frames carrying that participant's tone
    (each client sends a different frequency),
within --timeout seconds.  Media is attributed to a participant through the
stream id of the track's a=msid line in the subscribe_offer, as the protocol
says.  Then the second client sends `leave`; every other client must get
`participant_left` for it, and (with three clients) the remaining ones must
keep receiving each other's media.

Exit status: 0 on success, 1 on a test failure, 2 on a usage/setup error.
Loopback only: the ICE host candidates are forced to 127.0.0.1 (see
patch_loopback), so the test can run in a network namespace that has only lo.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import fractions
import json
import logging
import math
import os
import re
import ssl
import sys
import time
import weakref
from typing import Any, Optional

try:
    import aioice.ice
    import av
    import websockets
    from aiortc import (
        RTCBundlePolicy,
        RTCConfiguration,
        RTCPeerConnection,
        RTCSessionDescription,
    )
    from aiortc.codecs.vpx import VpxPayloadDescriptor
    from aiortc.mediastreams import (
        AudioStreamTrack,
        MediaStreamError,
        VideoStreamTrack,
    )
    from aiortc.rtcrtpreceiver import RTCRtpReceiver
    from aiortc.rtcrtpsender import RTCRtpSender
except ImportError as exc:  # pragma: no cover - environment problem
    print(
        f"FAIL: missing Python dependency ({exc}); "
        "install tests/interop/requirements.txt (run.sh does it)",
        file=sys.stderr,
    )
    sys.exit(2)

log = logging.getLogger("interop")

WIDTH, HEIGHT = 320, 240
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms at 48 kHz
# One background luma and one tone per client: lets the receiver tell whose
# media it is really decoding, independently of the msid label.
LUMAS = [50, 110, 170]
TONES_HZ = [400, 800, 1600]
LUMA_TOLERANCE = 22
FREQ_TOLERANCE = 0.2  # relative
MIN_TONE_RMS = 500.0

STEP_TIMEOUT = 15.0  # any single signaling / SDP step


class TestFailure(Exception):
    """The server (or the test setup) did not behave as required."""


# --------------------------------------------------------------------------
# Loopback-only ICE
# --------------------------------------------------------------------------


def patch_loopback(address: str) -> None:
    """aioice skips 127.0.0.1 when it gathers host candidates; in a namespace
    that has only lo there would be no candidate at all.  Signature in aioice
    0.13: get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str];
    it is looked up as a module global at gathering time, so replacing it on
    the module is enough."""

    def loopback_only(*_args: Any, **_kwargs: Any) -> list[str]:
        return [address]

    aioice.ice.get_host_addresses = loopback_only


# --------------------------------------------------------------------------
# RTP-level counters (evidence for failure reports)
# --------------------------------------------------------------------------

# receiver -> {"rtp": n, "ssrcs": set, "pts": set, "keyframes": n, "pli": n}
RX_DIAG: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# sender -> number of keyframe requests (PLI/FIR) it got from the server
TX_KEYFRAME_REQUESTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def vp8_keyframe(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe (RFC 7741)."""
    try:
        desc, rest = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return bool(desc.partition_start and desc.partition_id == 0 and rest and not rest[0] & 1)


def install_rtp_counters() -> None:
    """Wrap aiortc's receiver and sender hooks to count RTP packets, SSRCs,
    payload types and VP8 keyframes received, PLIs sent, and keyframe
    requests the publishers got.  Private aiortc methods (1.16); if they are
    missing, the counters stay empty and the test still runs."""
    rtp_hook = getattr(RTCRtpReceiver, "_handle_rtp_packet", None)
    pli_hook = getattr(RTCRtpReceiver, "_send_rtcp_pli", None)
    key_hook = getattr(RTCRtpSender, "_send_keyframe", None)
    if rtp_hook is None or pli_hook is None or key_hook is None:
        return

    def diag(receiver) -> dict:
        d = RX_DIAG.get(receiver)
        if d is None:
            d = RX_DIAG[receiver] = {"rtp": 0, "ssrcs": set(), "pts": set(), "keyframes": 0, "pli": 0}
        return d

    async def handle_rtp(self, packet, *args, **kwargs):
        d = diag(self)
        d["rtp"] += 1
        d["ssrcs"].add(packet.ssrc)
        d["pts"].add(packet.payload_type)
        if self.track is not None and self.track.kind == "video" and vp8_keyframe(packet.payload):
            d["keyframes"] += 1
        return await rtp_hook(self, packet, *args, **kwargs)

    async def send_pli(self, media_ssrc, *args, **kwargs):
        diag(self)["pli"] += 1
        return await pli_hook(self, media_ssrc, *args, **kwargs)

    def send_keyframe(self, *args, **kwargs):
        TX_KEYFRAME_REQUESTS[self] = TX_KEYFRAME_REQUESTS.get(self, 0) + 1
        return key_hook(self, *args, **kwargs)

    RTCRtpReceiver._handle_rtp_packet = handle_rtp
    RTCRtpReceiver._send_rtcp_pli = send_pli
    RTCRtpSender._send_keyframe = send_keyframe


def rx_diag_text(receiver) -> str:
    d = RX_DIAG.get(receiver)
    if not d:
        return "no RTP"
    text = f"rtp {d['rtp']} ssrc {sorted(d['ssrcs'])} pt {sorted(d['pts'])}"
    if receiver.track is not None and receiver.track.kind == "video":
        text += f" keyframes {d['keyframes']} pli-sent {d['pli']}"
    return text


# --------------------------------------------------------------------------
# Generated media
# --------------------------------------------------------------------------


class ToneTrack(AudioStreamTrack):
    """Mono s16 sine tone, 20 ms frames at 48 kHz, paced in real time."""

    def __init__(self, freq_hz: int, amplitude: int = 8000) -> None:
        super().__init__()
        # Integer frequency -> exactly periodic over one second: precompute
        # one second (plus a frame, to slice without wrapping).
        samples = [
            int(amplitude * math.sin(2 * math.pi * freq_hz * n / AUDIO_RATE))
            for n in range(AUDIO_RATE + AUDIO_SAMPLES)
        ]
        self._pcm = array.array("h", samples).tobytes()
        self._pts = 0
        self._start: Optional[float] = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += AUDIO_SAMPLES
            wait = self._start + self._pts / AUDIO_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        offset = (self._pts % AUDIO_RATE) * 2
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(self._pcm[offset : offset + AUDIO_SAMPLES * 2])
        frame.pts = self._pts
        frame.sample_rate = AUDIO_RATE
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class MovingBarTrack(VideoStreamTrack):
    """320x240 yuv420p: flat background of a per-client luma, and a white
    vertical bar that moves across the top 5/6 of the picture.  The bottom
    sixth stays flat so the receiver can measure the background."""

    def __init__(self, luma: int, width: int = WIDTH, height: int = HEIGHT) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.luma = luma
        self.bar_rows = height * 5 // 6
        self.bar_width = max(8, width // 16)
        self.counter = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=self.width, height=self.height, format="yuv420p")
        y, u, v = frame.planes
        stride = y.line_size
        x0 = (self.counter * 4) % (self.width - self.bar_width)
        row_bar = bytearray([self.luma]) * stride
        row_bar[x0 : x0 + self.bar_width] = b"\xeb" * self.bar_width
        row_flat = bytes([self.luma]) * stride
        y.update(
            bytes(row_bar) * self.bar_rows
            + row_flat * (self.height - self.bar_rows)
        )
        u.update(b"\x80" * u.buffer_size)
        v.update(b"\x80" * v.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        self.counter += 1
        return frame


def measure_background_luma(frame: av.VideoFrame) -> float:
    """Mean luma of a strip in the flat bottom part of the picture."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    data = bytes(plane)
    stride = plane.line_size
    h, w = frame.height, frame.width
    total = count = 0
    for row in (h * 11 // 12, h * 11 // 12 + 2):
        base = row * stride
        for col in range(w // 8, w - w // 8, 4):
            total += data[base + col]
            count += 1
    return total / count if count else -1.0


def measure_tone(frame: av.AudioFrame) -> tuple[float, float]:
    """(rms, estimated frequency in Hz) of the first channel."""
    pcm = array.array("h", bytes(frame.planes[0]))
    channels = len(frame.layout.channels)
    if frame.format.name != "s16" or frame.format.is_planar:
        # aiortc's Opus decoder gives packed s16; anything else: convert.
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=frame.sample_rate)
        out = resampler.resample(frame)
        if not out:
            return 0.0, 0.0
        pcm = array.array("h", bytes(out[0].planes[0]))
        channels = 2
    samples = pcm[0 :: max(1, channels)][: frame.samples]
    n = len(samples)
    if n == 0:
        return 0.0, 0.0
    rms = math.sqrt(sum(s * s for s in samples) / n)
    crossings = sum(
        1 for i in range(1, n) if (samples[i - 1] < 0) != (samples[i] < 0)
    )
    duration = n / (frame.sample_rate or AUDIO_RATE)
    return rms, crossings / 2 / duration


# --------------------------------------------------------------------------
# SDP helpers
# --------------------------------------------------------------------------


def msid_by_mid(sdp: str) -> dict[str, str]:
    """mid -> stream id (first token of a=msid, or of an a=ssrc ... msid:)."""
    result: dict[str, str] = {}
    for section in re.split(r"\r?\n(?=m=)", sdp)[1:]:
        mid = stream = None
        for line in section.splitlines():
            if line.startswith("a=mid:"):
                mid = line[6:].strip()
            elif line.startswith("a=msid:") and stream is None:
                stream = line[7:].split()[0]
            elif stream is None and re.match(r"a=ssrc:\d+ msid:", line):
                stream = line.split("msid:", 1)[1].split()[0]
        if mid is not None and stream is not None:
            result[mid] = stream
    return result


def active_stream_ids(sdp: str) -> set[str]:
    """Stream ids of the m-sections that still carry media (not inactive,
    not rejected with port 0)."""
    active = set()
    for section in re.split(r"\r?\n(?=m=)", sdp)[1:]:
        lines = section.splitlines()
        if lines[0].split()[1] == "0" or "a=inactive" in lines:
            continue
        active.update(msid_by_mid("\n" + section).values())
    return active


def direction_notes(sdp: str) -> set[str]:
    """Deviations of a subscribe_offer from docs/protocol.md: tracks are
    offered sendonly by kaigi, and removed tracks show up as inactive."""
    notes = set()
    for section in re.split(r"\r?\n(?=m=)", sdp)[1:]:
        lines = section.splitlines()
        kind, port = lines[0][2:].split()[0], lines[0].split()[1]
        if kind not in ("audio", "video") or port == "0":
            continue
        direction = next(
            (l[2:] for l in lines if l in ("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive")),
            "sendrecv",
        )
        has_msid = any(l.startswith("a=msid:") for l in lines)
        if direction == "inactive":
            continue
        if has_msid and direction != "sendonly":
            notes.add(f"subscribe_offer offers a track as {direction} (docs/protocol.md: sendonly from kaigi)")
        elif not has_msid and direction != "inactive":
            notes.add(
                f"subscribe_offer has an m-section without a track as {direction} "
                "(docs/protocol.md: removed tracks show up as inactive)"
            )
    return notes


def sdp_summary(sdp: str) -> str:
    """One line per m-section: kind, mid, direction, first codec, msid."""
    out = []
    for section in re.split(r"\r?\n(?=m=)", sdp)[1:]:
        lines = section.splitlines()
        m = lines[0].split()
        kind, pts = m[0][2:], m[3:]
        mid = direction = msid = codec = "-"
        rtpmap = {}
        for line in lines:
            if line.startswith("a=mid:"):
                mid = line[6:]
            elif line in ("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"):
                direction = line[2:]
            elif line.startswith("a=msid:"):
                msid = line[7:]
            elif line.startswith("a=rtpmap:"):
                pt, name = line[9:].split(" ", 1)
                rtpmap[pt] = name
        if pts:
            codec = rtpmap.get(pts[0], pts[0])
        out.append(f"{kind} mid={mid} {direction} port={m[1]} codec={codec} msid={msid}")
    return "; ".join(out)


def first_codec(sdp: str, kind: str) -> str:
    for section in re.split(r"\r?\n(?=m=)", sdp)[1:]:
        lines = section.splitlines()
        if not lines[0].startswith(f"m={kind} "):
            continue
        pts = lines[0].split()[3:]
        for line in lines:
            if pts and line.startswith(f"a=rtpmap:{pts[0]} "):
                return line.split(" ", 1)[1]
    return "?"


# --------------------------------------------------------------------------
# One participant
# --------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.frames = 0
        self.good = 0
        self.bad = 0
        self.last = ""
        self.last_ok = False

    def __str__(self) -> str:
        s = f"{self.good}/{self.frames}"
        if self.bad:
            s += f" ({self.bad} wrong, last {self.last})"
        return s


class Client:
    def __init__(self, index: int, args: argparse.Namespace, world: "World") -> None:
        self.index = index
        self.name = "ABC"[index] if index < 3 else f"C{index}"
        self.args = args
        self.world = world
        self.luma = LUMAS[index % len(LUMAS)]
        self.tone = TONES_HZ[index % len(TONES_HZ)]
        self.ws: Any = None
        self.pid: Optional[str] = None
        self.pub_pc: Optional[RTCPeerConnection] = None
        self.sub_pc: Optional[RTCPeerConnection] = None
        self.known: dict[str, str] = {}  # participant id -> name (others)
        self.left: set[str] = set()
        self.msids: dict[str, str] = {}  # subscribe mid -> stream id
        self.rx: dict[tuple[str, str], Stats] = {}  # (pid, kind) -> stats
        self.unmapped_tracks: list[str] = []
        self.receivers: dict[tuple[str, str], Any] = {}  # (pid, kind) -> RTCRtpReceiver
        self.errors: list[str] = []
        self.replies: dict[str, asyncio.Queue] = {
            "welcome": asyncio.Queue(),
            "publish_answer": asyncio.Queue(),
        }
        self.offers: asyncio.Queue = asyncio.Queue()
        self.changed = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.subscribe_offers = 0
        self.last_offer = ""
        self.active_streams: set[str] = set()
        self.pub_codecs = ""
        self.closed_by_server: Optional[str] = None
        self.dump = None
        if args.dump_dir:
            os.makedirs(args.dump_dir, exist_ok=True)
            self.dump = open(os.path.join(args.dump_dir, f"client-{self.name}.jsonl"), "w")

    # ---- small helpers ------------------------------------------------

    def tag(self) -> str:
        return f"[{self.name}{'/' + self.pid if self.pid else ''}]"

    def info(self, msg: str) -> None:
        print(f"{time.monotonic() - self.world.t0:7.2f}s {self.tag()} {msg}", flush=True)

    def record(self, direction: str, msg: dict) -> None:
        if self.dump:
            self.dump.write(
                json.dumps({"t": round(time.monotonic() - self.world.t0, 3), "dir": direction, "msg": msg})
                + "\n"
            )
            self.dump.flush()

    async def send(self, msg: dict) -> None:
        self.record("send", msg)
        try:
            await asyncio.wait_for(self.ws.send(json.dumps(msg)), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.tag()} sending {msg['type']} timed out")
        except websockets.ConnectionClosed as exc:
            raise TestFailure(f"{self.tag()} socket closed while sending {msg['type']}: {exc}")

    async def reply(self, kind: str, timeout: float = STEP_TIMEOUT) -> dict:
        """The next `kind` message; fails at once on a server error or a
        closed socket, and after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        queue = self.replies[kind]
        while True:
            if not queue.empty():
                return queue.get_nowait()
            problem = ""
            if self.errors:
                problem = f"server said: {' | '.join(self.errors)}"
            elif self.closed_by_server:
                problem = f"socket closed: {self.closed_by_server}"
            elif time.monotonic() >= deadline:
                problem = f"nothing within {timeout:.0f}s"
            if problem:
                raise TestFailure(f"{self.tag()} waiting for {kind}: {problem}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(0.25, max(0.01, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                pass

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.name}:{name}")
        self.tasks.append(task)
        return task

    def new_pc(self, label: str, bundle_policy: RTCBundlePolicy = RTCBundlePolicy.BALANCED) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=bundle_policy))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            self.info(f"{label} connection: {pc.connectionState}")
            if pc.connectionState == "failed":
                self.errors.append(f"{label} connection failed")
            self.changed.set()

        return pc

    # ---- lifecycle ------------------------------------------------------

    async def connect_and_join(self) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # kaigi's self-signed cert; test only
        try:
            self.ws = await asyncio.wait_for(
                websockets.connect(
                    self.args.url,
                    ssl=ctx if self.args.url.startswith("wss:") else None,
                    open_timeout=STEP_TIMEOUT,
                    max_size=1 << 20,
                    ping_interval=None,
                ),
                STEP_TIMEOUT + 1,
            )
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
            raise TestFailure(f"{self.tag()} cannot open {self.args.url}: {exc!r}") from None
        self.spawn(self.reader(), "reader")
        self.spawn(self.offer_worker(), "subscribe")
        await self.send({"type": "join", "v": 1, "room": self.args.room, "name": f"aiortc {self.name}"})
        welcome = await self.reply("welcome")
        if welcome.get("v") != 1:
            raise TestFailure(f"{self.tag()} welcome has v={welcome.get('v')!r}, want 1: {welcome}")
        if welcome.get("room") != self.args.room:
            raise TestFailure(f"{self.tag()} welcome for room {welcome.get('room')!r}, joined {self.args.room!r}")
        pid = welcome.get("participant_id")
        if not isinstance(pid, str) or not pid:
            raise TestFailure(f"{self.tag()} welcome without participant_id: {welcome}")
        self.pid = pid
        for p in welcome.get("participants", []):
            self.known[p["id"]] = p.get("name", "?")
        if pid in self.known:
            raise TestFailure(f"{self.tag()} welcome lists the joiner itself: {welcome}")
        self.world.by_pid[pid] = self
        self.info(f"joined room {self.args.room}; others: {sorted(self.known) or 'none'}")

    async def publish(self) -> None:
        pc = self.pub_pc = self.new_pc("publish")
        codec = self.args.video_codec
        pc.addTransceiver(ToneTrack(self.tone), direction="sendonly")
        video = pc.addTransceiver(MovingBarTrack(self.luma), direction="sendonly")
        if codec != "any":
            from aiortc.rtcrtpsender import RTCRtpSender

            caps = RTCRtpSender.getCapabilities("video").codecs
            prefs = [c for c in caps if c.mimeType.lower() in (f"video/{codec}", "video/rtx")]
            video.setCodecPreferences(prefs)
        offer = await asyncio.wait_for(pc.createOffer(), STEP_TIMEOUT)
        await asyncio.wait_for(pc.setLocalDescription(offer), STEP_TIMEOUT)
        await self.send({"type": "publish_offer", "sdp": pc.localDescription.sdp})
        answer = await self.reply("publish_answer")
        sdp = answer.get("sdp", "")
        try:
            await asyncio.wait_for(
                pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer")), STEP_TIMEOUT
            )
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.tag()} setRemoteDescription(publish_answer) timed out") from None
        except Exception as exc:
            raise TestFailure(
                f"{self.tag()} aiortc rejected publish_answer: {exc!r}\n--- publish_answer SDP ---\n{sdp}"
            ) from None
        self.pub_codecs = f"audio {first_codec(sdp, 'audio')}, video {first_codec(sdp, 'video')}"
        self.info(f"publish_answer applied: {sdp_summary(sdp)}")

    async def reader(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    msg = json.loads(raw)
                except (TypeError, ValueError):
                    self.errors.append(f"non-JSON frame from server: {raw!r:.200}")
                    continue
                self.record("recv", msg)
                kind = msg.get("type")
                if kind in self.replies:
                    self.replies[kind].put_nowait(msg)
                elif kind == "subscribe_offer":
                    self.offers.put_nowait(msg)
                elif kind == "participant_joined":
                    p = msg.get("participant", {})
                    self.known[p.get("id")] = p.get("name", "?")
                    self.info(f"participant_joined {p.get('id')} ({p.get('name')})")
                elif kind == "participant_left":
                    self.left.add(msg.get("id"))
                    self.info(f"participant_left {msg.get('id')}")
                elif kind == "participant_updated":
                    pass
                elif kind == "error":
                    self.errors.append(f"{msg.get('code')}: {msg.get('message')}")
                    self.info(f"server error {msg.get('code')}: {msg.get('message')}")
                elif kind == "pong":
                    pass
                else:
                    self.info(f"unexpected message type {kind!r}: {str(msg)[:200]}")
                self.changed.set()
        except websockets.ConnectionClosed as exc:
            self.closed_by_server = str(exc)
        self.closed_by_server = self.closed_by_server or "closed"
        self.changed.set()

    async def offer_worker(self) -> None:
        """Answer subscribe_offers one at a time, in order."""
        while True:
            msg = await self.offers.get()
            self.subscribe_offers += 1
            try:
                await self.answer_subscribe(msg.get("sdp", ""))
            except TestFailure as exc:
                self.errors.append(str(exc))
                self.info(str(exc))
                self.changed.set()

    async def answer_subscribe(self, sdp: str) -> None:
        n = self.subscribe_offers
        self.info(f"subscribe_offer #{n}: {sdp_summary(sdp)}")
        self.msids.update(msid_by_mid(sdp))
        if self.sub_pc is None:
            # MAX_BUNDLE on the answering side works around an aiortc bug
            # (1.16): with the default BALANCED policy, when one offer brings
            # two new m-sections of a kind that is not the BUNDLE tag's kind
            # (e.g. two videos, audio first), the second one is left on an
            # orphan transport and its packets are routed to the first one.
            self.sub_pc = self.new_pc("subscribe", RTCBundlePolicy.MAX_BUNDLE)
            pc = self.sub_pc

            @pc.on("track")
            def on_track(track) -> None:
                mid = next(
                    (t.mid for t in pc.getTransceivers() if t.receiver.track is track), None
                )
                pid = self.msids.get(mid or "")
                if pid is None:
                    self.unmapped_tracks.append(f"{track.kind} mid={mid}")
                    self.info(f"track {track.kind} mid={mid} has no msid stream id")
                    return
                self.info(f"track {track.kind} mid={mid} from {pid}")
                receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
                self.receivers[(pid, track.kind)] = receiver
                self.spawn(self.consume(track, pid), f"rx-{pid}-{track.kind}")

        pc = self.sub_pc
        try:
            await asyncio.wait_for(
                pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer")), STEP_TIMEOUT
            )
            answer = await asyncio.wait_for(pc.createAnswer(), STEP_TIMEOUT)
            await asyncio.wait_for(pc.setLocalDescription(answer), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.tag()} handling subscribe_offer #{n} timed out") from None
        except Exception as exc:
            raise TestFailure(
                f"{self.tag()} aiortc could not answer subscribe_offer #{n}: {exc!r}\n"
                f"--- subscribe_offer SDP ---\n{sdp}"
            ) from None
        await self.send({"type": "subscribe_answer", "sdp": pc.localDescription.sdp})
        self.last_offer = sdp
        self.active_streams = active_stream_ids(sdp)
        self.world.notes.update(direction_notes(sdp))

    async def consume(self, track, pid: str) -> None:
        stats = self.rx.setdefault((pid, track.kind), Stats())
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.info(f"{track.kind} track from {pid} ended")
                return
            stats.frames += 1
            sender = self.world.by_pid.get(pid)
            if track.kind == "video":
                luma = measure_background_luma(frame)
                ok = sender is not None and abs(luma - sender.luma) <= LUMA_TOLERANCE
                desc = f"{frame.width}x{frame.height} luma {luma:.0f}"
                if sender is not None:
                    desc += f" want {sender.luma}"
            else:
                # Measure every 5th frame only (pure-Python maths is slow);
                # the frames between count as the last measurement said.
                if stats.frames % 5 != 1:
                    if stats.last_ok:
                        stats.good += 1
                    continue
                rms, freq = measure_tone(frame)
                ok = (
                    sender is not None
                    and rms >= MIN_TONE_RMS
                    and abs(freq - sender.tone) <= FREQ_TOLERANCE * sender.tone
                )
                desc = f"rms {rms:.0f} {freq:.0f} Hz"
                if sender is not None:
                    desc += f" want {sender.tone} Hz"
            stats.last_ok = ok
            if ok:
                stats.good += 1
            elif stats.frames > 10:  # the very first frames may be concealment
                stats.bad += 1
                stats.last = desc
            if stats.frames in (1, 10):
                self.info(f"rx {track.kind} from {pid}: frame {stats.frames}: {desc}")
            self.changed.set()

    def received(self, pid: str, kind: str) -> int:
        stats = self.rx.get((pid, kind))
        return stats.good if stats else 0

    def satisfied(self, others: list[str]) -> bool:
        return all(
            self.received(p, "video") >= self.args.min_video
            and self.received(p, "audio") >= self.args.min_audio
            for p in others
        )

    def summary(self) -> str:
        parts = []
        for pid in sorted({p for p, _ in self.rx} | set(self.world.by_pid) - {self.pid}):
            v = self.rx.get((pid, "video"))
            a = self.rx.get((pid, "audio"))
            parts.append(f"from {pid}: video {v or '0/0'} audio {a or '0/0'}")
        pub = self.pub_pc.connectionState if self.pub_pc else "none"
        sub = self.sub_pc.connectionState if self.sub_pc else "none"
        return (
            f"{self.tag()} sends {self.pub_codecs or '?'}; publish {pub}, subscribe {sub}, "
            f"{self.subscribe_offers} subscribe_offer(s); " + "; ".join(parts or ["nothing received"])
        )

    def rtp_report(self) -> list[str]:
        """RTP-level counters, one line per received track, and the keyframe
        requests this client's publisher got."""
        lines = []
        if self.pub_pc is not None:
            for t in self.pub_pc.getTransceivers():
                if t.kind == "video":
                    n = TX_KEYFRAME_REQUESTS.get(t.sender, 0)
                    lines.append(f"{self.tag()} publisher got {n} keyframe request(s) (PLI/FIR) for its video")
        for (pid, kind), receiver in sorted(self.receivers.items()):
            lines.append(f"{self.tag()} {kind} from {pid}: {rx_diag_text(receiver)}")
        return lines

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await asyncio.wait_for(task, 3)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
                pass
        for pc in (self.sub_pc, self.pub_pc):
            if pc is not None:
                try:
                    await asyncio.wait_for(pc.close(), 5)
                except (asyncio.TimeoutError, Exception) as exc:
                    self.info(f"closing peer connection: {exc!r}")
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except (asyncio.TimeoutError, Exception):
                pass
        if self.dump:
            self.dump.close()
            self.dump = None


class World:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.by_pid: dict[str, Client] = {}
        self.notes: set[str] = set()  # protocol deviations that do not stop media


# --------------------------------------------------------------------------
# The meeting
# --------------------------------------------------------------------------


async def wait_until(clients: list[Client], cond, timeout: float) -> bool:
    """Wait until cond() is true; stop early when a client reports an error."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        for c in clients:
            if c.errors:
                raise TestFailure(f"{c.tag()} " + " | ".join(c.errors))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        for c in clients:
            c.changed.clear()
        waiters = [asyncio.ensure_future(c.changed.wait()) for c in clients]
        try:
            await asyncio.wait(waiters, timeout=min(remaining, 0.5), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()


async def meeting(args: argparse.Namespace) -> None:
    world = World()
    clients = [Client(i, args, world) for i in range(args.clients)]
    try:
        # Join and publish one after the other (a real meeting: people come in
        # while others are already sending), so that every client but the
        # last gets at least one renegotiating subscribe_offer.
        for c in clients:
            await c.connect_and_join()
            await c.publish()
            if args.stagger:
                await asyncio.sleep(args.stagger)

        pids = {c.name: c.pid for c in clients}
        for c in clients:
            others = [o.pid for o in clients if o is not c]

            def knows_all(c=c, others=others) -> bool:
                return all(p in c.known for p in others)

            if not await wait_until(clients, knows_all, STEP_TIMEOUT):
                raise TestFailure(
                    f"{c.tag()} was never told about {sorted(set(others) - set(c.known))} "
                    f"(welcome/participant_joined); knows {sorted(c.known)}"
                )

        print(f"participants: {pids}; waiting up to {args.timeout:.0f}s for media", flush=True)

        def all_media() -> bool:
            return all(c.satisfied([o.pid for o in clients if o is not c]) for c in clients)

        ok = await wait_until(clients, all_media, args.timeout)
        for c in clients:
            print("SUMMARY " + c.summary(), flush=True)
        for c in clients:
            for line in c.rtp_report():
                print("RTP " + line, flush=True)
        if not ok:
            lines = []
            for c in clients:
                for o in clients:
                    if o is c:
                        continue
                    v, a = c.received(o.pid, "video"), c.received(o.pid, "audio")
                    if v < args.min_video or a < args.min_audio:
                        lines.append(
                            f"{c.tag()} got {v} good video (want {args.min_video}) and {a} good audio "
                            f"(want {args.min_audio}) frames from {o.pid}"
                        )
                    receiver = c.receivers.get((o.pid, "video"))
                    d = RX_DIAG.get(receiver) if receiver is not None else None
                    if v < args.min_video and d and d["rtp"] and not d["keyframes"]:
                        asked = sum(
                            TX_KEYFRAME_REQUESTS.get(t.sender, 0)
                            for t in (o.pub_pc.getTransceivers() if o.pub_pc else [])
                            if t.kind == "video"
                        )
                        lines.append(
                            f"    {d['rtp']} video RTP packets from {o.pid} arrived but no VP8 keyframe; "
                            f"{c.name} sent {d['pli']} PLI(s) for it, and {o.name}'s publisher got "
                            f"{asked} keyframe request(s) in all"
                        )
                if c.unmapped_tracks:
                    lines.append(f"{c.tag()} tracks without msid stream id: {c.unmapped_tracks}")
                strays = sorted({p for p, _ in c.rx} - set(world.by_pid))
                if strays:
                    lines.append(f"{c.tag()} received tracks for unknown stream ids {strays}")
            raise TestFailure(f"not all media arrived within {args.timeout:.0f}s:\n  " + "\n  ".join(lines))

        # ---- leave ----------------------------------------------------------
        leaver = clients[1]
        rest = [c for c in clients if c is not leaver]
        before = {
            (c.name, o.pid): c.received(o.pid, "video") for c in rest for o in rest if o is not c
        }
        leaver.info("sending leave")
        await leaver.send({"type": "leave"})
        if not await wait_until(rest, lambda: all(leaver.pid in c.left for c in rest), STEP_TIMEOUT):
            missing = [c.tag() for c in rest if leaver.pid not in c.left]
            raise TestFailure(f"no participant_left for {leaver.pid} at {missing} within {STEP_TIMEOUT:.0f}s")
        await leaver.close()

        # The leaver's tracks go: the others get a subscribe_offer in which
        # its m-sections are inactive (docs/protocol.md, renegotiation).
        if not await wait_until(rest, lambda: all(leaver.pid not in c.active_streams for c in rest), STEP_TIMEOUT):
            lines = [
                f"{c.tag()} latest subscribe_offer (#{c.subscribe_offers}): {sdp_summary(c.last_offer)}"
                for c in rest
                if leaver.pid in c.active_streams
            ]
            raise TestFailure(
                f"{STEP_TIMEOUT:.0f}s after {leaver.pid} left, its tracks are still active in the "
                f"subscribe connection (no renegotiating subscribe_offer):\n  " + "\n  ".join(lines)
            )

        if len(rest) >= 2:
            # Media between the remaining participants must keep flowing
            # through that renegotiation.
            def still_flowing() -> bool:
                return all(
                    c.received(o.pid, "video") >= before[(c.name, o.pid)] + args.min_video
                    for c in rest
                    for o in rest
                    if o is not c
                )

            if not await wait_until(rest, still_flowing, STEP_TIMEOUT):
                for c in rest:
                    print("SUMMARY " + c.summary(), flush=True)
                raise TestFailure(
                    f"after {leaver.pid} left, video between the remaining participants stopped"
                )
        for c in rest:
            print("AFTER-LEAVE " + c.summary(), flush=True)
        if world.notes and args.strict:
            raise TestFailure("protocol deviations (--strict): " + "; ".join(sorted(world.notes)))
    finally:
        for note in sorted(world.notes):
            print(f"PROTOCOL NOTE: {note}", flush=True)
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="kaigi signaling URL, e.g. wss://127.0.0.1:18443/ws")
    ap.add_argument("--room", default="interop-1")
    ap.add_argument("--clients", type=int, default=3, choices=(2, 3), help="participants (default 3)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds for all media to arrive")
    ap.add_argument("--min-video", type=int, default=30, help="decoded video frames per remote participant")
    ap.add_argument("--min-audio", type=int, default=50, help="decoded audio frames per remote participant")
    ap.add_argument("--stagger", type=float, default=0.5, help="seconds between joins")
    ap.add_argument("--video-codec", default="vp8", choices=("vp8", "h264", "any"),
                    help="video codec offered on the publish connection (default vp8)")
    ap.add_argument("--host-address", default="127.0.0.1",
                    help="the only local ICE host candidate address (default 127.0.0.1)")
    ap.add_argument("--strict", action="store_true",
                    help="fail on SDP direction deviations from docs/protocol.md too (else: PROTOCOL NOTE lines)")
    ap.add_argument("--dump-dir", help="write every signaling message, per client, to DIR/client-X.jsonl")
    ap.add_argument("-v", "--verbose", action="store_true", help="aiortc/aioice debug logs")
    return ap.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if not args.verbose:
        # A receiver joining mid-stream fails to decode the frames before its first
        # keyframe; aiortc warns once per frame. The test counts decoded frames only.
        logging.getLogger("aiortc.rtcrtpreceiver").setLevel(logging.ERROR)
    patch_loopback(args.host_address)
    install_rtp_counters()
    import aiortc

    print(
        f"aiortc {aiortc.__version__}, aioice {getattr(aioice, '__version__', '?')}, "
        f"websockets {websockets.__version__}, av {av.__version__}; url {args.url}, room {args.room}, "
        f"{args.clients} clients",
        flush=True,
    )
    budget = 4 * STEP_TIMEOUT * args.clients + args.timeout + 4 * STEP_TIMEOUT
    try:
        asyncio.run(asyncio.wait_for(meeting(args), budget))
    except TestFailure as exc:
        print(f"FAIL: {exc}", file=sys.stderr, flush=True)
        return 1
    except asyncio.TimeoutError:
        print(f"FAIL: the whole test took longer than {budget:.0f}s", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("FAIL: interrupted", file=sys.stderr)
        return 1
    print(f"PASS: {args.clients} aiortc clients exchanged audio and video through kaigi, "
          f"and participant_left arrived", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
