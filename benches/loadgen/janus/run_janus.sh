#!/bin/bash
# Runs Debian's Janus (apt-get install janus) with the loopback config in conf/
# and the load generator against its videoroom plugin, in the netns_lo.sh
# namespace (lo + a veth holding 127.0.0.2; Janus only reaches 127.0.0.2, so
# the generator's peers bind 127.0.0.2). As root. Build first:
#   cargo build --release -p kaigi-bench
# Usage: benches/loadgen/janus/run_janus.sh [loadgen args...]
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
if [ -z "$IN_NETNS_LO" ]; then exec "$HERE/netns_lo.sh" "$0" "$@"; fi
export JANUS_RUN_DIR=$(mktemp -d)
JP=$("$HERE/start_janus.sh" | tail -1)
rc=0
./target/release/loadgen --target janus --bind 127.0.0.2 --url http://127.0.0.1:8088/janus \
  --server-pid "$JP" "$@" || rc=$?
kill "$JP"; wait "$JP" 2>/dev/null || true
exit $rc
