#!/usr/bin/python3
"""A WHIP encoder built from GStreamer's webrtcbin (Debian's GStreamer 1.22).

Sends VP8 (a flat grey picture, videotestsrc + vp8enc) and Opus (a 440 Hz
tone) to `POST <url>` with a bearer key, the way a WHIP client does: one
offer with all its candidates (non-trickle), the answer from the 201, and
`DELETE` on the Location when it stops (SIGTERM/SIGINT, or --seconds).
Prints `published <location>` once the answer is applied, `ended` at the
end. Run with Debian's python3 (GObject introspection: python3-gi,
gir1.2-gst-plugins-bad-1.0, gir1.2-nice-0.1), not the aiortc virtualenv.
"""

import argparse
import signal
import ssl
import sys
import urllib.error
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

PIPELINE = (
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=solid-color foreground-color=0xff808080 "
    "! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert "
    "! vp8enc deadline=1 keyframe-max-dist=30 target-bitrate=400000 "
    "! rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. "
    "audiotestsrc is-live=true freq=440 volume=0.3 ! audioconvert ! audioresample "
    "! opusenc ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w. "
)


def http(method: str, url: str, body: bytes, headers: dict) -> tuple[int, dict, str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # test only: kaigi's self-signed certificate
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="https://127.0.0.1:18443/whip/<room>")
    ap.add_argument("--key", required=True)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--address", default="127.0.0.1", help="the only local address ICE uses")
    args = ap.parse_args()

    Gst.init(None)
    pipe = Gst.parse_launch(PIPELINE)
    w = pipe.get_by_name("w")
    # libnice leaves loopback out when it gathers; a namespace with only lo needs it.
    # (The ICE object is kept referenced: its Python wrapper must not outlive it.)
    ice = w.get_property("ice-agent")
    agent = ice.get_property("agent")
    addr = Nice.Address.new()
    addr.set_from_string(args.address)
    agent.add_local_address(addr)
    loop = GLib.MainLoop()
    state = {"location": None, "offered": False, "rc": 0}
    base = args.url.split("/whip/")[0]

    def fail(msg: str) -> None:
        print(f"error: {msg}", file=sys.stderr, flush=True)
        state["rc"] = 1
        loop.quit()

    def send_offer() -> None:
        if state["offered"]:
            return
        state["offered"] = True
        sdp = w.get_property("local-description").sdp.as_text()
        status, headers, body = http(
            "POST", args.url, sdp.encode(),
            {"Content-Type": "application/sdp", "Authorization": f"Bearer {args.key}"},
        )
        if status != 201:
            return fail(f"WHIP POST answered {status}: {body}")
        state["location"] = headers.get("Location") or headers.get("location")
        ok, msg = GstSdp.SDPMessage.new_from_text(body)
        if ok != GstSdp.SDPResult.OK:
            return fail("the answer is not SDP")
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        w.emit("set-remote-description", answer, None)
        print(f"published {state['location']}", flush=True)

    def poll_gathering() -> bool:
        # Polled from the main loop: webrtcbin's own threads stay free of Python.
        if state["offered"]:
            return False
        gathering = w.get_property("ice-gathering-state")
        if gathering == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            send_offer()
            return False
        return True

    def on_offer(promise, *_data) -> None:
        try:
            promise.wait()
            # The reply is kept referenced while the offer in it is used.
            reply = promise.get_reply()
            offer = reply.get_value("offer")
            w.emit("set-local-description", offer, None)
        except Exception as exc:  # a callback on GStreamer's thread: report, do not hang
            print(f"on_offer: {exc!r}", file=sys.stderr, flush=True)

    def on_negotiation_needed(_w) -> None:
        promise = Gst.Promise.new_with_change_func(on_offer, None)
        w.emit("create-offer", None, promise)

    def stop(*_a) -> bool:
        if state["location"]:
            status, _, body = http("DELETE", base + state["location"], b"", {"Authorization": f"Bearer {args.key}"})
            if status != 200:
                print(f"error: DELETE answered {status}: {body}", file=sys.stderr, flush=True)
                state["rc"] = 1
        print("ended", flush=True)
        loop.quit()
        return False

    def on_bus(_bus, message) -> None:
        if message.type == Gst.MessageType.ERROR:
            err, dbg = message.parse_error()
            fail(f"GStreamer: {err.message} ({dbg})")

    w.connect("on-negotiation-needed", on_negotiation_needed)
    GLib.timeout_add(100, poll_gathering)
    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_bus)
    # Send only: the transceivers webrtcbin made for the two sink pads.
    pipe.set_state(Gst.State.READY)
    for i in range(2):
        t = w.emit("get-transceiver", i)
        if t is not None:
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
    pipe.set_state(Gst.State.PLAYING)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)
    GLib.timeout_add(int(args.seconds * 1000), stop)
    loop.run()
    pipe.set_state(Gst.State.NULL)
    del agent, ice
    return state["rc"]


if __name__ == "__main__":
    sys.exit(main())
