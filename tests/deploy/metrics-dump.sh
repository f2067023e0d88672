#!/usr/bin/env bash
# Starts kaigi on loopback, gives it a little traffic so that its labelled metric families exist
# (a join, a refused join, a malformed message, WHIP and WHEP offers refused, one rate-limited),
# and writes its /metrics to OUT, for tests/deploy/check.sh.
#
# Usage: tests/deploy/metrics-dump.sh [OUT]      (default OUT: /tmp/kaigi-metrics.txt)
# Environment:
#   KAIGI_BIN         server binary (default: ${CARGO_TARGET_DIR:-target}/release/kaigi)
#   KAIGI_HTTP_PORT   HTTPS port on 127.0.0.1 (default 18543)
#   KAIGI_MEDIA_PORT  media port on 127.0.0.1 (default 20000)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${1:-/tmp/kaigi-metrics.txt}
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
KAIGI_BIN=${KAIGI_BIN:-$TARGET/release/kaigi}
HTTP_PORT=${KAIGI_HTTP_PORT:-18543}
MEDIA_PORT=${KAIGI_MEDIA_PORT:-20000}

die() { echo "tests/deploy/metrics-dump.sh: $*" >&2; exit 1; }
[ -x "$KAIGI_BIN" ] || die "no server binary at $KAIGI_BIN (cargo build --release -p kaigi, or set KAIGI_BIN)"
command -v curl >/dev/null || die "curl is missing"

TMP=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ]; then
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# One offer a minute (the first goes through at once), so that the second is rate limited.
cat >"$TMP/kaigi.toml" <<EOF
[server]
bind = "127.0.0.1"
http_port = $HTTP_PORT
data_dir = "$TMP/data"
drain_secs = 0
[media]
port = $MEDIA_PORT
public_ip = "127.0.0.1"
workers = 2
[limits]
offers_per_ip_per_minute = 2
EOF
env -u RUST_LOG "$KAIGI_BIN" --config "$TMP/kaigi.toml" >"$TMP/kaigi.log" 2>&1 &
PID=$!
URL="https://127.0.0.1:$HTTP_PORT"
for _ in $(seq 100); do
  curl -sfk "$URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$TMP/kaigi.log" >&2; die "kaigi did not start"; }
  sleep 0.1
done
curl -sfk "$URL/readyz" >/dev/null || { cat "$TMP/kaigi.log" >&2; die "kaigi is not ready"; }

python3 - "$HTTP_PORT" "$OUT" <<'PY'
import base64
import json
import os
import socket
import ssl
import sys
import urllib.error
import urllib.request

port, out = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def ws_open():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def ws_send(s, text):
    data, mask = text.encode(), os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def ws_recv(s):
    b0, b1 = recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(recv_exact(s, 2), "big")
    elif n == 127:
        n = int.from_bytes(recv_exact(s, 8), "big")
    return json.loads(recv_exact(s, n).decode())


def post(path, body):
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=body.encode(),
                                 headers={"Content-Type": "application/sdp"}, method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# A participant that stays in its room while the metrics are read.
joined = ws_open()
ws_send(joined, json.dumps({"type": "join", "v": 1, "room": "deploy-check", "name": "check"}))
assert ws_recv(joined)["type"] == "welcome"
ws_send(joined, "not json")  # kaigi_ws_rejected_total{reason="malformed"}
# A refused join: kaigi_joins_total{result="unsupported_version"}.
refused = ws_open()
ws_send(refused, json.dumps({"type": "join", "v": 99, "room": "deploy-check", "name": "x"}))
assert ws_recv(refused)["type"] == "error"
offer = "v=0\r\n"
codes = [post("/whip/deploy-check", offer), post("/whep/deploy-check", offer)]
assert codes[0] != 201 and codes[1] == 429, codes  # unauthorized, then rate limited
with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=ctx) as r:
    text = r.read().decode()
with open(out, "w", encoding="utf-8") as f:
    f.write(text)
families = sum(1 for line in text.splitlines() if line.startswith("# TYPE "))
print(f"metrics dump: {families} families from kaigi on 127.0.0.1:{port} written to {out}")
PY
