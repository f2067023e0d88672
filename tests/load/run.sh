#!/usr/bin/env bash
# Load smoke test: the load generator's real WebRTC peers (benches/loadgen) join one livestream
# room on a real kaigi, in a private network namespace: every viewer must connect and receive
# audio and video with no loss. A functional check under concurrency, not a speed measurement
# (those live in benches/).
#
# Usage (as root): tests/load/run.sh [VIEWERS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VIEWERS=${1:-20}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
[ "$(id -u)" -eq 0 ] || { echo "tests/load/run.sh: run as root" >&2; exit 2; }
if [ -z "${KAIGI_LOAD_IN_NETNS:-}" ]; then
  exec env KAIGI_LOAD_IN_NETNS=1 unshare -n -- bash "$0" "$@"
fi
ip link set lo up
RUN=$(mktemp -d)
# No drain needed at the end of a test: SIGKILL.
trap 'kill -KILL "${KP:-}" 2>/dev/null || true; rm -rf "$RUN"' EXIT
"$TARGET/release/kaigi" --bind 127.0.0.1 --public-ip 127.0.0.1 --http-port 18443 \
  --media-port 11000 --data-dir "$RUN/data" >"$RUN/kaigi.log" 2>&1 &
KP=$!
for _ in $(seq 100); do
  python3 -c 'import ssl,urllib.request; urllib.request.urlopen("https://127.0.0.1:18443/healthz", context=ssl._create_unverified_context(), timeout=1)' 2>/dev/null && break
  sleep 0.1
done
"$TARGET/release/loadgen" --url https://127.0.0.1:18443 --server-pid "$KP" \
  --server-metrics https://127.0.0.1:18443/metrics --scenario livestream \
  --subscribers "$VIEWERS" --duration 5 --ramp 20 --video-kbps 500 --out "$RUN/result.json"
python3 - "$RUN/result.json" "$VIEWERS" <<'PY'
import json, sys
r, n = json.load(open(sys.argv[1])), int(sys.argv[2])
t, c = r["totals"], r["clients"]
print(f"load: {c['subscribed']}/{n} viewers subscribed, {t['packets_received']} packets received, "
      f"loss {t['loss_pct']}%, delay p50 {t['delay_ms']['p50']} ms, errors {c['errors']}")
fails = []
if c["subscribed"] != n: fails.append(f"only {c['subscribed']} of {n} viewers subscribed")
if c["errors"]: fails.append(f"{c['errors']} client errors: {c.get('error_samples')}")
if t["loss_pct"] != 0: fails.append(f"loss {t['loss_pct']}%")
# 2 streams per viewer, ~5 s of 500 kbit/s video and 50 pkt/s audio: far more than 100 each.
if t["packets_received"] < n * 2 * 100: fails.append(f"too few packets: {t['packets_received']}")
# kaigi's own forwarding-delay histogram is exported and saw the steady window's media.
fd = r["steady_state"].get("server_forward_delay_ms") or {}
print(f"load: server forward delay {fd}")
if not fd.get("count"): fails.append(f"kaigi_forward_delay_seconds recorded nothing: {fd}")
if fails: sys.exit("load smoke failed: " + "; ".join(fails))
PY
kill -0 "$KP" || { echo "kaigi died under load" >&2; tail -20 "$RUN/kaigi.log"; exit 1; }
echo "load smoke passed"
