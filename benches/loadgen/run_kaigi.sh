#!/bin/bash
# Runs kaigi and the load generator together in a private network namespace
# (loopback only), as root. Build first:
#   cargo build --release -p kaigi -p kaigi-bench
# Usage: benches/loadgen/run_kaigi.sh [loadgen args...]
#   e.g. benches/loadgen/run_kaigi.sh --scenario livestream --subscribers 500 --duration 20 --out r.json
# The room size limit is lifted (KAIGI_LIMITS__MAX_PARTICIPANTS_PER_ROOM) so one room can hold the load.
set -e
cd "$(dirname "$0")/../.."
if [ -z "$IN_NETNS" ]; then exec env IN_NETNS=1 unshare -n "$0" "$@"; fi
ip link set lo up
DATA=$(mktemp -d)
KAIGI_LIMITS__MAX_PARTICIPANTS_PER_ROOM=${MAX_PARTICIPANTS:-5000} ./target/release/kaigi \
  --bind 127.0.0.1 --public-ip 127.0.0.1 --http-port 18443 --media-port 11000 \
  --data-dir "$DATA" 2>"$DATA/kaigi.log" &
KP=$!
for i in $(seq 50); do curl -sk -o /dev/null https://127.0.0.1:18443/healthz && break; sleep 0.1; done
rc=0
./target/release/loadgen --url https://127.0.0.1:18443 --server-pid $KP "$@" || rc=$?
curl -sk https://127.0.0.1:18443/metrics | grep -E '^kaigi_(packets|rtp_forwarded|keyframe|joins)' >&2 || true
kill $KP; wait $KP 2>/dev/null || true
exit $rc
