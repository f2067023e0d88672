#!/usr/bin/env python3
"""Interop: GStreamer's webrtcbin publishes VP8 + Opus over WHIP; an aiortc WHEP player decodes it.

gst_whip_publisher.py (Debian's GStreamer 1.22 and python3-gi, a separate
process) sends a flat grey picture as VP8 and a 440 Hz tone as Opus to
`POST /whip/{room}` with the room's stream key. An aiortc WHEP player must be
answered with VP8 and decode the grey (luma) and the tone (pitch); when the
encoder stops it DELETEs its session and the room is no longer live (a new
WHEP request gets 404).

Run by run.sh (kaigi on 127.0.0.1 in a private network namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import aiortc_meeting as m
import ffmpeg_whip as fw

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM_PYTHON = "/usr/bin/python3"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="https://127.0.0.1:18443")
    ap.add_argument("--room", default="gst-interop")
    ap.add_argument("--key", required=True)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    m.patch_loopback("127.0.0.1")
    pub = subprocess.Popen(
        [SYSTEM_PYTHON, os.path.join(HERE, "gst_whip_publisher.py"),
         "--url", f"{args.base}/whip/{args.room}", "--key", args.key, "--seconds", "90"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and pub.poll() is None:
            line = pub.stdout.readline()
            if line.startswith("published"):
                break
        if not line.startswith("published"):
            err = pub.stderr.read() if pub.poll() is not None else ""
            raise m.TestFailure(f"GStreamer did not publish: {line!r} {err[-800:]}")
        print(f"GStreamer webrtcbin {line.strip()}", flush=True)
        # Live once its first packets arrived (ICE and DTLS take a moment after the 201).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, _, body = fw.http("GET", f"{args.base}/watch/{args.room}/status")
            if status == 200 and '"live":true' in body.replace(" ", ""):
                break
            time.sleep(0.2)
        else:
            raise m.TestFailure("the GStreamer broadcast never became live")
        got = asyncio.run(fw.whep_viewer(args.base, args.room, args.timeout, 30, 50, video_codec="VP8"))
        print(f"WHEP player (aiortc) decoded GStreamer's VP8 broadcast: {got}", flush=True)
        pub.terminate()
        out, err = pub.communicate(timeout=15)
        if pub.returncode != 0 or "ended" not in out:
            raise m.TestFailure(f"the GStreamer encoder did not end cleanly (rc {pub.returncode}): {err[-800:]}")
        status, _, body = fw.http("POST", f"{args.base}/whep/{args.room}", b"v=0\r\n", {"Content-Type": "application/sdp"})
        if status != 404:
            raise m.TestFailure(f"after the encoder's DELETE the room must not be live: WHEP answered {status} {body}")
        print("GStreamer's DELETE ended the broadcast (WHEP now 404)", flush=True)
    except m.TestFailure as exc:
        print(f"FAIL: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if pub.poll() is None:
            pub.kill()
            pub.wait()
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
