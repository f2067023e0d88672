#!/usr/bin/env bash
# Interop tests through a real kaigi binary: aiortc clients hold a meeting;
# FFmpeg's WHIP muxer (from the PyAV wheel) publishes a broadcast that an
# aiortc participant decodes (ffmpeg_whip.py); GStreamer's webrtcbin publishes VP8
# over WHIP and an aiortc WHEP player decodes it (gst_whip.py); recordings of broadcasts,
# read back by ffprobe/ffmpeg after a SIGKILL and after a stop (recording.py).
#
# Expects to run inside a network namespace whose only interface is lo (up),
# e.g.:   unshare -n bash -c 'ip link set lo up; tests/interop/run.sh'
# Everything binds to and advertises 127.0.0.1 only.
#
# Such a namespace cannot reach PyPI: create the virtualenv first, outside it:
#         tests/interop/run.sh --setup
# (idempotent: does nothing when the venv already has aiortc and websockets).
#
# Environment:
#   KAIGI_BIN        kaigi binary        (default: $REPO/target/release/kaigi)
#   KAIGI_VENV       virtualenv to use   (default: $REPO/target/venv-interop)
#   KAIGI_HTTP_PORT  signaling port      (default: 18443)
#   KAIGI_MEDIA_PORT media port          (default: 11000)
#   PYTHON           interpreter for creating the venv (default: python3)
#   RUST_LOG         passed to kaigi     (default: info)
#   INTEROP_ARGS     extra arguments for aiortc_meeting.py (e.g. "--clients 2 -v")
#   INTEROP_KEEP     1: keep the kaigi log and signaling dumps even on success
# Exit status: the test's (0 pass, 1 fail, 2 setup error).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
KAIGI_BIN="${KAIGI_BIN:-$REPO/target/release/kaigi}"
VENV="${KAIGI_VENV:-$REPO/target/venv-interop}"
HTTP_PORT="${KAIGI_HTTP_PORT:-18443}"
MEDIA_PORT="${KAIGI_MEDIA_PORT:-11000}"
PY="${PYTHON:-python3}"

say() { echo "interop: $*" >&2; }

SETUP_ONLY=""
case "${1:-}" in
    --setup) SETUP_ONLY=1 ;;
    "") ;;
    *) say "usage: $0 [--setup]"; exit 2 ;;
esac

# ---- virtualenv (idempotent) ------------------------------------------------
if ! "$VENV/bin/python" -c 'import aiortc, websockets' >/dev/null 2>&1; then
    say "creating virtualenv $VENV from $HERE/requirements.txt"
    if ! { "$PY" -m venv "$VENV" &&
           "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
               -r "$HERE/requirements.txt"; }; then
        say "could not create the virtualenv; without network (unshare -n) run '$0 --setup' outside the namespace first"
        exit 2
    fi
fi
"$VENV/bin/python" -c 'import aiortc, websockets' || { say "virtualenv $VENV is broken"; exit 2; }
if [[ -n "$SETUP_ONLY" ]]; then
    say "virtualenv ready: $VENV"
    exit 0
fi

# ---- kaigi ------------------------------------------------------------------
if [[ ! -x "$KAIGI_BIN" ]]; then
    say "no kaigi binary at $KAIGI_BIN (build it: cargo build --release, or set KAIGI_BIN)"
    exit 2
fi
if ip -o link show 2>/dev/null | grep -qv ': lo:'; then
    say "warning: interfaces other than lo exist; this test is meant for a namespace with only lo (unshare -n)"
fi
ip link set lo up 2>/dev/null || true

WORK="$(mktemp -d -t kaigi-interop.XXXXXX)"
DATA="$WORK/data"
mkdir -p "$DATA"
LOG="$WORK/kaigi.log"
KAIGI_PID=""
# shellcheck disable=SC2317  # called through trap
cleanup() {
    if [[ -n "$KAIGI_PID" ]] && kill -0 "$KAIGI_PID" 2>/dev/null; then
        kill "$KAIGI_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$KAIGI_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$KAIGI_PID" 2>/dev/null || true
        wait "$KAIGI_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WHIP_KEY="interop-whip-key-$RANDOM$RANDOM"
say "starting $KAIGI_BIN (log: $LOG)"
KAIGI_AUTH__STREAM_KEYS="{ \"whip-interop\" = \"$WHIP_KEY\", \"gst-interop\" = \"$WHIP_KEY\" }" \
RUST_LOG="${RUST_LOG:-info}" "$KAIGI_BIN" \
    --bind 127.0.0.1 --public-ip 127.0.0.1 \
    --http-port "$HTTP_PORT" --media-port "$MEDIA_PORT" \
    --data-dir "$DATA" >"$LOG" 2>&1 &
KAIGI_PID=$!

healthy=""
for _ in $(seq 150); do   # up to ~30 s (first start may generate a certificate)
    if ! kill -0 "$KAIGI_PID" 2>/dev/null; then
        say "kaigi exited during start-up; its log:"
        cat "$LOG" >&2
        KAIGI_PID=""
        exit 2
    fi
    if "$VENV/bin/python" - "$HTTP_PORT" <<'PYEOF' 2>/dev/null
import ssl, sys, urllib.request
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with urllib.request.urlopen(f"https://127.0.0.1:{sys.argv[1]}/healthz", context=ctx, timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PYEOF
    then healthy=1; break; fi
    sleep 0.2
done
if [[ -z "$healthy" ]]; then
    say "kaigi did not answer https://127.0.0.1:$HTTP_PORT/healthz within 30 s; its log:"
    tail -n 100 "$LOG" >&2
    exit 2
fi
say "kaigi is up (pid $KAIGI_PID)"

# ---- the test -----------------------------------------------------------------
set +e
# shellcheck disable=SC2086  # INTEROP_ARGS is split on purpose
"$VENV/bin/python" "$HERE/aiortc_meeting.py" \
    --url "wss://127.0.0.1:$HTTP_PORT/ws" --room interop-1 \
    --dump-dir "$WORK/signaling" ${INTEROP_ARGS:-}
status=$?
if [[ $status -eq 0 ]]; then
    say "FFmpeg's WHIP muxer publishes, aiortc watches"
    "$VENV/bin/python" "$HERE/ffmpeg_whip.py" \
        --url "wss://127.0.0.1:$HTTP_PORT/ws" --room whip-interop --key "$WHIP_KEY" \
        --dump-dir "$WORK/signaling-whip"
    status=$?
fi
if [[ $status -eq 0 ]]; then
    say "GStreamer's webrtcbin publishes VP8 over WHIP, an aiortc WHEP player watches"
    (cd "$HERE" && "$VENV/bin/python" "$HERE/gst_whip.py" \
        --base "https://127.0.0.1:$HTTP_PORT" --room gst-interop --key "$WHIP_KEY")
    status=$?
fi
if [[ $status -eq 0 ]]; then
    say "recordings: FFmpeg (H.264 → MP4) and aiortc (VP8 → WebM) killed mid-broadcast, and one stopped by the API"
    (cd "$HERE" && "$VENV/bin/python" "$HERE/recording.py" --kaigi "$KAIGI_BIN" \
        --http-port $((HTTP_PORT + 20)) --media-port $((MEDIA_PORT + 20)))
    status=$?
fi
set -e

if ! kill -0 "$KAIGI_PID" 2>/dev/null; then
    say "kaigi is no longer running after the test (crashed?)"
    KAIGI_PID=""
    [[ $status -eq 0 ]] && status=1
fi
if [[ $status -ne 0 ]]; then
    say "FAILED (status $status). Last lines of the kaigi log ($LOG):"
    tail -n 60 "$LOG" >&2
    say "signaling messages of each client: $WORK/signaling/"
else
    say "passed"
    if [[ "${INTEROP_KEEP:-0}" == 1 ]]; then
        say "kaigi log and signaling dumps kept in $WORK"
    else
        rm -rf "$WORK"
    fi
fi
exit "$status"
