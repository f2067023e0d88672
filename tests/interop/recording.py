#!/usr/bin/env python3
"""Interop: broadcasts recorded by kaigi, read back by FFmpeg's own tools.

Three runs, each against its own kaigi (started here, on 127.0.0.1, with
`recording.auto` or the recording API):

1. FFmpeg's WHIP muxer (PyAV wheel) publishes H.264 + Opus for 20 s; kaigi
   records it as fragmented MP4 from the start; kaigi is killed with SIGKILL
   15 s in. ffprobe (Debian's ffmpeg) must read the file: H.264 and Opus
   streams and at least 12 s of video.
2. The same with an aiortc WHIP publisher sending VP8 + Opus: WebM.
3. aiortc publishes VP8 + Opus; the recording is started and stopped through
   the API (`POST`/`DELETE /api/rooms/{room}/recording` with the admin key);
   the stopped file is complete: ffmpeg decodes all of it without an error,
   it has a duration and seek index, it is listed by `GET /api/recordings`
   and its download link gives the same bytes.

Run by run.sh inside a private network namespace (loopback only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import aiortc_meeting as m
import ffmpeg_whip as fw

ADMIN_KEY = "interop-admin-key-0123456789abcdef"


def say(msg: str) -> None:
    print(f"recording: {msg}", file=sys.stderr, flush=True)


class Kaigi:
    """A kaigi of this test's own (it is killed on purpose)."""

    def __init__(self, binary: str, work: str, http_port: int, media_port: int, auto: bool) -> None:
        self.http_port = http_port
        self.rec_dir = os.path.join(work, "recordings")
        self.log_path = os.path.join(work, f"kaigi-{http_port}-{int(time.time() * 1000)}.log")
        env = dict(os.environ)
        env.update(
            {
                "KAIGI_RECORDING__AUTO": "true" if auto else "false",
                "KAIGI_RECORDING__DIR": self.rec_dir,
                "KAIGI_ADMIN__API_KEY": ADMIN_KEY,
                "KAIGI_AUTH__STREAM_KEYS": '{ "rec-h264" = "key-h264", "rec-vp8" = "key-vp8", "rec-api" = "key-api" }',
                "RUST_LOG": env.get("RUST_LOG", "info"),
            }
        )
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1", "--public-ip", "127.0.0.1",
                "--http-port", str(http_port), "--media-port", str(media_port),
                "--data-dir", os.path.join(work, "data"),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise m.TestFailure(f"kaigi exited at start; log {self.log_path}")
            try:
                status, _, _ = fw.http("GET", f"{self.base}/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise m.TestFailure("kaigi did not start")

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def tail(self, n: int = 40) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def recordings(self) -> list[str]:
        if not os.path.isdir(self.rec_dir):
            return []
        return sorted(os.listdir(self.rec_dir))


def probe(path: str) -> dict:
    """ffprobe's view: the streams, and per stream the packets and the last packet's end."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path],
        capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0:
        raise m.TestFailure(f"ffprobe cannot read {path}: {out.stderr.strip()}")
    info = json.loads(out.stdout)
    pk = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,duration_time",
         "-of", "csv=p=0", path],
        capture_output=True, text=True, timeout=60,
    )
    ends: dict[int, float] = {}
    counts: dict[int, int] = {}
    for line in pk.stdout.splitlines():
        parts = line.split(",")
        if len(parts) < 2 or parts[1] in ("", "N/A"):
            continue
        idx, pts = int(parts[0]), float(parts[1])
        dur = float(parts[2]) if len(parts) > 2 and parts[2] not in ("", "N/A") else 0.0
        ends[idx] = max(ends.get(idx, 0.0), pts + dur)
        counts[idx] = counts.get(idx, 0) + 1
    info["ends"], info["counts"] = ends, counts
    return info


def check_streams(info: dict, video: str, min_seconds: float, label: str) -> float:
    codecs = {s["codec_type"]: (s["index"], s["codec_name"]) for s in info["streams"]}
    if codecs.get("video", (0, ""))[1] != video or codecs.get("audio", (0, ""))[1] != "opus":
        raise m.TestFailure(f"{label}: streams are {codecs}, expected {video} and opus")
    v_idx, a_idx = codecs["video"][0], codecs["audio"][0]
    v_end, a_end = info["ends"].get(v_idx, 0.0), info["ends"].get(a_idx, 0.0)
    say(f"{label}: {video} {info['counts'].get(v_idx, 0)} packets to {v_end:.2f} s, "
        f"opus {info['counts'].get(a_idx, 0)} packets to {a_end:.2f} s")
    if v_end < min_seconds or a_end < min_seconds:
        raise m.TestFailure(f"{label}: {v_end:.2f} s of video, {a_end:.2f} s of audio; at least {min_seconds} s expected")
    return v_end


async def aiortc_whip(base: str, room: str, key: str, seconds: float, kill_at: float | None, kaigi: Kaigi | None) -> None:
    """aiortc as a WHIP encoder: VP8 + Opus for `seconds` (kaigi SIGKILLed at `kill_at`)."""
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcrtpsender import RTCRtpSender

    pc = RTCPeerConnection()
    pc.addTransceiver(m.ToneTrack(440), direction="sendonly")
    video = pc.addTransceiver(m.MovingBarTrack(90), direction="sendonly")
    caps = RTCRtpSender.getCapabilities("video").codecs
    video.setCodecPreferences([c for c in caps if c.mimeType.lower() in ("video/vp8", "video/rtx")])
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, body = await asyncio.to_thread(
        fw.http, "POST", f"{base}/whip/{room}", pc.localDescription.sdp.encode(),
        {"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
    )
    if status != 201:
        raise m.TestFailure(f"aiortc WHIP POST: {status} {body}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if kill_at is not None and kaigi is not None and time.monotonic() - t0 >= kill_at:
            say(f"SIGKILL to kaigi {kill_at:.0f} s into the broadcast")
            kaigi.kill9()
            kill_at = None
        await asyncio.sleep(0.1)
    if kaigi is not None and kaigi.proc.poll() is None:
        location = headers.get("Location") or headers.get("location")
        if location:
            await asyncio.to_thread(fw.http, "DELETE", f"{base}{location}", b"",
                                    {"Authorization": f"Bearer {key}"})
    await pc.close()


def crash_h264(args: argparse.Namespace, work: str) -> None:
    k = Kaigi(args.kaigi, work, args.http_port, args.media_port, auto=True)
    try:
        done, errors = threading.Event(), []
        url = f"{k.base}/whip/rec-h264"
        t = threading.Thread(target=fw.publish, args=(url, "key-h264", 20.0, done, errors), daemon=True)
        t.start()
        time.sleep(15.0)
        say("SIGKILL to kaigi 15 s into the FFmpeg broadcast")
        k.kill9()
        done.set()
        t.join(timeout=20)
        files = [f for f in k.recordings() if f.endswith(".mp4")]
        if len(files) != 1:
            raise m.TestFailure(f"expected one MP4 recording, found {k.recordings()}; log:\n{k.tail()}")
        path = os.path.join(k.rec_dir, files[0])
        say(f"{files[0]}: {os.path.getsize(path)} bytes after the kill")
        check_streams(probe(path), "h264", args.min_seconds, "FFmpeg WHIP H.264 → MP4, killed at 15 s")
    finally:
        k.stop()


def crash_vp8(args: argparse.Namespace, work: str) -> None:
    k = Kaigi(args.kaigi, work, args.http_port, args.media_port, auto=True)
    try:
        asyncio.run(aiortc_whip(k.base, "rec-vp8", "key-vp8", 20.0, 15.0, k))
        files = [f for f in k.recordings() if f.endswith(".webm")]
        if len(files) != 1:
            raise m.TestFailure(f"expected one WebM recording, found {k.recordings()}; log:\n{k.tail()}")
        path = os.path.join(k.rec_dir, files[0])
        say(f"{files[0]}: {os.path.getsize(path)} bytes after the kill")
        check_streams(probe(path), "vp8", args.min_seconds, "aiortc WHIP VP8 → WebM, killed at 15 s")
    finally:
        k.stop()


def api_stop(args: argparse.Namespace, work: str) -> None:
    k = Kaigi(args.kaigi, work, args.http_port, args.media_port, auto=False)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        async def run() -> dict:
            pub = asyncio.create_task(aiortc_whip(k.base, "rec-api", "key-api", 9.0, None, None))
            # Once the broadcast is live, start recording it.
            deadline = time.monotonic() + 8
            status, body = 0, ""
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                status, _, body = await asyncio.to_thread(fw.http, "POST", f"{k.base}/api/rooms/rec-api/recording", b"", admin)
                if status != 404:
                    break
            if status != 201:
                raise m.TestFailure(f"POST recording: {status} {body}")
            started = json.loads(body)
            status, _, body = await asyncio.to_thread(fw.http, "POST", f"{k.base}/api/rooms/rec-api/recording", b"", admin)
            if status != 409:
                raise m.TestFailure(f"a second start must be 409, got {status} {body}")
            await asyncio.sleep(5.0)
            status, _, body = await asyncio.to_thread(fw.http, "DELETE", f"{k.base}/api/rooms/rec-api/recording", b"", admin)
            if status != 200:
                raise m.TestFailure(f"DELETE recording: {status} {body}")
            stopped = json.loads(body)
            await pub
            return {"started": started, "stopped": stopped}

        r = asyncio.run(run())
        name = r["stopped"]["name"]
        if r["stopped"]["state"] != "complete" or r["stopped"]["bytes"] <= 0:
            raise m.TestFailure(f"stopped recording: {r['stopped']}")
        path = os.path.join(k.rec_dir, name)
        info = probe(path)
        check_streams(info, "vp8", 4.0, "recording started and stopped by API (WebM)")
        duration = float(info["format"].get("duration", 0) or 0)
        if duration < 4.0:
            raise m.TestFailure(f"a stopped WebM has its Duration: got {info['format'].get('duration')}")
        dec = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"],
                             capture_output=True, text=True, timeout=120)
        if dec.returncode != 0 or dec.stderr.strip():
            raise m.TestFailure(f"ffmpeg decoding the stopped recording: {dec.stderr.strip()[:800]}")
        status, _, body = fw.http("GET", f"{k.base}/api/recordings", b"", admin)
        listed = [x for x in json.loads(body)["recordings"] if x["name"] == name]
        if status != 200 or not listed:
            raise m.TestFailure(f"GET /api/recordings does not list {name}: {status} {body}")
        import ssl
        import urllib.request

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(f"{k.base}{listed[0]['download']}", context=ctx, timeout=30) as resp:
            data = resp.read()
        with open(path, "rb") as f:
            if f.read() != data:
                raise m.TestFailure("the download link gives other bytes than the file")
        say(f"API: {name} {len(data)} bytes, duration {duration:.2f} s, decodes cleanly, listed, downloaded")
    finally:
        k.stop()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kaigi", required=True)
    p.add_argument("--http-port", type=int, default=18463)
    p.add_argument("--media-port", type=int, default=11020)
    p.add_argument("--min-seconds", type=float, default=12.0)
    p.add_argument("--only", choices=["h264", "vp8", "api"], action="append")
    args = p.parse_args(argv)
    if not shutil.which("ffprobe"):
        say("ffprobe is missing (Debian package ffmpeg)")
        return 2
    m.patch_loopback("127.0.0.1")
    runs = {"h264": crash_h264, "vp8": crash_vp8, "api": api_stop}
    for name in args.only or ["h264", "vp8", "api"]:
        work = tempfile.mkdtemp(prefix=f"kaigi-rec-{name}-")
        try:
            runs[name](args, work)
        except m.TestFailure as e:
            say(f"FAILED ({name}): {e} (files kept in {work})")
            return 1
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept {work}")
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
