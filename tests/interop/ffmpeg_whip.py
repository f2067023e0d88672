#!/usr/bin/env python3
"""Interop: FFmpeg's WHIP muxer publishes into kaigi; an aiortc participant and an aiortc WHEP player watch.

FFmpeg (the libraries bundled in the PyAV wheel, with their `whip` muxer)
encodes a flat grey picture (H.264, constrained baseline, as encoders send for
WebRTC) and a 440 Hz tone (Opus) and pushes them to kaigi's
`POST /whip/{room}` with a stream key. An aiortc client joins the room over
the signaling WebSocket like a browser and must decode the broadcast: video
frames with the grey's luma and audio frames with the tone's pitch. A WHEP
player (aiortc offering receive-only audio and video to `POST /whep/{room}`)
must decode the same, and end its session with DELETE. Then the WHIP session
is ended by FFmpeg (DELETE) and the participant must see the source leave.

Run by run.sh (kaigi on 127.0.0.1 in a private network namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import threading
import time
from types import SimpleNamespace

import av

import aiortc_meeting as m

# `color=gray` is RGB 128: luma ~126 in the limited range H.264 carries.
GREY_LUMA = 126
TONE_HZ = 440


def p256_identity(directory: str) -> tuple[str, str]:
    """A self-signed ECDSA P-256 certificate for FFmpeg's DTLS.

    FFmpeg built with GnuTLS (as in the PyAV wheel) generates a P-224 key for
    DTLS when given none; kaigi's DTLS (ring) verifies P-256, P-384, Ed25519
    and RSA signatures only, so such a handshake fails. Real deployments pass
    the same two options (`-cert_file`, `-key_file`); see the README.
    """
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ffmpeg-whip")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def publish(url: str, key: str, seconds: float, done: threading.Event, errors: list[str]) -> None:
    """Encodes `seconds` of test picture and tone and sends them through FFmpeg's WHIP muxer."""
    try:
        cert_file, key_file = p256_identity(tempfile.mkdtemp(prefix="kaigi-whip-"))
        src_v = av.open("color=c=gray:size=640x360:rate=30", format="lavfi")
        src_a = av.open(f"sine=frequency={TONE_HZ}:sample_rate=48000", format="lavfi")
        out = av.open(
            url,
            mode="w",
            format="whip",
            options={
                "authorization": key,
                "handshake_timeout": "10000",
                "cert_file": cert_file,
                "key_file": key_file,
            },
        )
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
        vs.options = {
            "profile": "baseline",
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": "keyint=30:min-keyint=30:bframes=0:scenecut=0",
        }
        as_ = out.add_stream("libopus", rate=48000)
        as_.layout = "stereo"
        vframes = src_v.decode(video=0)
        aframes = src_a.decode(audio=0)
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
        t0 = time.monotonic()
        n = 0
        sent_audio = 0.0
        while time.monotonic() - t0 < seconds and not done.is_set():
            frame = next(vframes)
            frame.pts = n
            frame.time_base = vs.codec_context.time_base or frame.time_base
            for p in vs.encode(frame):
                out.mux(p)
            n += 1
            # Audio up to the video's time.
            while sent_audio < n / 30:
                for af in resampler.resample(next(aframes)):
                    for p in as_.encode(af):
                        out.mux(p)
                    sent_audio += af.samples / 48000
            # Real time: a live encoder.
            ahead = t0 + n / 30 - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        for p in vs.encode(None):
            out.mux(p)
        out.close()  # FFmpeg DELETEs the WHIP resource
    except Exception as exc:  # the test reports it
        errors.append(f"FFmpeg WHIP publisher: {exc!r}")


def http(method: str, url: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, str]:
    """One HTTPS request to kaigi (self-signed certificate: not verified, test only)."""
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def whep_viewer(
    base: str, room: str, timeout: float, min_video: int, min_audio: int, video_codec: str | None = None
) -> str:
    """A WHEP player (aiortc): offers receive-only audio and video, decodes the broadcast
    (whose video must be `video_codec`, e.g. "VP8", when given)."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    counts = {"video": 0, "audio": 0}
    bad: list[str] = []
    done = asyncio.Event()

    async def consume(track) -> None:
        n = 0
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            n += 1
            if track.kind == "video":
                luma = m.measure_background_luma(frame)
                if abs(luma - GREY_LUMA) <= m.LUMA_TOLERANCE:
                    counts["video"] += 1
                elif n > 10:
                    bad.append(f"luma {luma:.0f}")
            elif n % 5 == 1:
                rms, freq = m.measure_tone(frame)
                if rms >= m.MIN_TONE_RMS and abs(freq - TONE_HZ) <= m.FREQ_TOLERANCE * TONE_HZ:
                    counts["audio"] += 5
            if counts["video"] >= min_video and counts["audio"] >= min_audio:
                done.set()

    tasks = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = await asyncio.to_thread(
        http, "POST", f"{base}/whep/{room}", pc.localDescription.sdp.encode(),
        {"Content-Type": "application/sdp"},
    )
    if status != 201:
        raise m.TestFailure(f"WHEP POST answered {status}: {answer}")
    location = headers.get("Location") or headers.get("location")
    if not location:
        raise m.TestFailure("WHEP 201 without a Location")
    if video_codec and not m.first_codec(answer, "video").upper().startswith(video_codec.upper()):
        raise m.TestFailure(f"the WHEP answer's video is {m.first_codec(answer, 'video')}, not {video_codec}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except asyncio.TimeoutError:
        raise m.TestFailure(
            f"the WHEP player decoded {counts['video']} grey video frames (want {min_video}) and "
            f"~{counts['audio']} tone audio frames (want {min_audio}); wrong: {bad[-3:]}"
        ) from None
    finally:
        status, _, body = await asyncio.to_thread(http, "DELETE", f"{base}{location}")
        for t in tasks:
            t.cancel()
        await pc.close()
    if status != 200:
        raise m.TestFailure(f"WHEP DELETE answered {status}: {body}")
    return f"video {counts['video']} audio ~{counts['audio']}"


async def run(args: argparse.Namespace) -> None:
    world = m.World()
    viewer = m.Client(0, args, world)
    await viewer.connect_and_join()
    whip_url = args.url.replace("wss://", "https://").replace("ws://", "http://").rsplit("/ws", 1)[0]
    whip_url += f"/whip/{args.room}"
    done = threading.Event()
    errors: list[str] = []
    thread = threading.Thread(
        target=publish, args=(whip_url, args.key, args.seconds, done, errors), daemon=True
    )
    thread.start()
    try:
        # The broadcast source joins the room like a participant.
        def source() -> str | None:
            return next((p for p, name in viewer.known.items() if p != viewer.pid), None)

        if not await m.wait_until([viewer], lambda: source() is not None or bool(errors), m.STEP_TIMEOUT):
            raise m.TestFailure(f"the WHIP source never appeared in the room: {errors}")
        if errors:
            raise m.TestFailure(errors[0])
        pid = source()
        # The viewer's checks compare against the sender's picture and tone.
        world.by_pid[pid] = SimpleNamespace(luma=GREY_LUMA, tone=TONE_HZ)
        print(f"WHIP source {pid} ({viewer.known[pid]!r}) is in the room", flush=True)
        ok = await m.wait_until(
            [viewer],
            lambda: viewer.satisfied([pid]) or bool(errors),
            args.timeout,
        )
        print("SUMMARY " + viewer.summary(), flush=True)
        if errors:
            raise m.TestFailure(errors[0])
        if not ok:
            raise m.TestFailure(
                f"the viewer decoded {viewer.received(pid, 'video')} video (want {args.min_video}) and "
                f"{viewer.received(pid, 'audio')} audio (want {args.min_audio}) frames of the WHIP broadcast"
            )
        print(f"viewer decoded the WHIP broadcast: {viewer.summary()}", flush=True)
        base = whip_url.rsplit("/whip/", 1)[0]
        got = await whep_viewer(base, args.room, args.timeout, args.min_video, args.min_audio)
        print(f"WHEP player (aiortc) decoded the broadcast: {got}; DELETE ended it", flush=True)
        done.set()
        await asyncio.to_thread(thread.join, 20)
        if errors:
            raise m.TestFailure(errors[0])
        # FFmpeg's close() sent DELETE: the source leaves the room.
        if not await m.wait_until([viewer], lambda: pid in viewer.left or pid not in viewer.known, m.STEP_TIMEOUT):
            raise m.TestFailure(f"the WHIP source {pid} was not seen leaving after DELETE")
        print("WHIP source left after DELETE", flush=True)
    finally:
        done.set()
        await viewer.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="kaigi signaling URL, e.g. wss://127.0.0.1:18443/ws")
    ap.add_argument("--room", default="whip-interop")
    ap.add_argument("--key", required=True, help="the room's WHIP stream key")
    ap.add_argument("--seconds", type=float, default=40.0, help="longest the encoder runs")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--min-video", type=int, default=30)
    ap.add_argument("--min-audio", type=int, default=50)
    ap.add_argument("--host-address", default="127.0.0.1")
    ap.add_argument("--dump-dir")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    logging.getLogger("aiortc.rtcrtpreceiver").setLevel(logging.ERROR)
    m.patch_loopback(args.host_address)
    m.install_rtp_counters()
    print(f"av {av.__version__} (FFmpeg libavformat {av.library_versions.get('libavformat')}); {args.url}", flush=True)
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout + 6 * m.STEP_TIMEOUT))
    except m.TestFailure as exc:
        print(f"FAIL: {exc}", file=sys.stderr, flush=True)
        return 1
    except asyncio.TimeoutError:
        print("FAIL: the test ran out of time", file=sys.stderr, flush=True)
        return 1
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
