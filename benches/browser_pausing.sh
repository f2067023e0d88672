#!/usr/bin/env bash
# What off-page pausing saves in a real browser meeting: N headless Chromium participants (default
# 9) in one room, first with every tile on one page (everything forwarded), then with 4 tiles per
# page (each sees itself and 3 others; the others' camera video is not forwarded to it). Reports
# kaigi's forwarded bitrate, packets forwarded and paused, and CPU, per phase.
#
#   sudo benches/browser_pausing.sh [PARTICIPANTS] [SECONDS_PER_PHASE]
#
# Runs in a private network namespace on loopback (needs what scripts/test.sh installs: chromium,
# tests/e2e/node_modules). Writes benches/results/browser-pausing-<date>.{json,md}.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-9}
SECS=${2:-20}
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespace)" >&2; exit 2; }
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
if [ -z "${KAIGI_PAUSING_IN_NETNS:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --release -p kaigi)
  exec env KAIGI_PAUSING_IN_NETNS=1 unshare -n -- bash "$0" "$@"
fi
ip link set lo up
RUN=$(mktemp -d)
# No drain needed at the end of a test: SIGKILL.
trap 'kill -KILL "${KP:-}" 2>/dev/null || true; rm -rf "$RUN"' EXIT
"$TARGET/release/kaigi" --bind 127.0.0.1 --public-ip 127.0.0.1 --http-port 18443 --media-port 11000 \
  --data-dir "$RUN/data" >"$RUN/kaigi.log" 2>&1 &
KP=$!
node "$ROOT/tests/e2e/http-get.mjs" https://127.0.0.1:18443/healthz --wait 30 --pid "$KP" >/dev/null
DAY=$(date -u +%Y-%m-%d)
MACHINE="$(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)"
KAIGI_URL=https://127.0.0.1:18443 KAIGI_PID=$KP node "$ROOT/benches/browser_pausing.mjs" "$N" "$SECS" \
  "$ROOT/benches/results/browser-pausing-$DAY" "$MACHINE" "$(git -C "$ROOT" rev-parse --short HEAD)"
