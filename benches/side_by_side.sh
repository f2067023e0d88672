#!/usr/bin/env bash
# The same load against kaigi and against Janus, in one run, on loopback inside a private network
# namespace. Writes benches/results/side-by-side-<date>-<scenario>.{json,md}.
#
#   sudo benches/side_by_side.sh [--scenario livestream] [--subscribers 200] [--duration 20]
#                                [--video-kbps 1000] [--servers "kaigi janus"] [--rooms 1] [--out PATH]
#                                [--viewers-via ws|whep]
#
# --viewers-via whep (kaigi only, livestream): the viewers play the broadcast over WHEP
# (POST /whep/{room}) instead of joining as /ws participants; the results then go to
# benches/results/broadcast-<date>-<viewers>.{json,md}:
#
#   sudo benches/side_by_side.sh --servers kaigi --viewers-via whep --subscribers 1000 --ramp 50 --duration 20
#
# Each server is pinned to CPU 0 (kaigi with one media worker) and the load generator to the other
# CPUs, so that "per core" means one core and the generator's CPU is never counted as the
# server's. Server CPU comes from /proc/PID/stat over the load generator's run; peak memory from
# VmHWM in /proc/PID/status.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/benches/side_by_side.sh"
ARGS=("$@")
SCENARIO=livestream SUBSCRIBERS=200 DURATION=20 KBPS=1000 SERVERS="kaigi janus" RAMP=50 OUT_BASE= ROOMS=1
VIEWERS_VIA=ws
while [ $# -gt 0 ]; do
  case "$1" in
    --scenario) SCENARIO=$2; shift 2 ;;
    --subscribers) SUBSCRIBERS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --video-kbps) KBPS=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --ramp) RAMP=$2; shift 2 ;;
    --out) OUT_BASE=$2; shift 2 ;;
    --rooms) ROOMS=$2; shift 2 ;;
    --viewers-via) VIEWERS_VIA=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespace): sudo $0" >&2; exit 2; }
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$VIEWERS_VIA" = whep ] && { [ "$SERVERS" != kaigi ] || [ "$SCENARIO" != livestream ]; }; then
  echo "--viewers-via whep needs --servers kaigi and --scenario livestream" >&2; exit 2
fi
export SCENARIO SUBSCRIBERS DURATION KBPS SERVERS RAMP TARGET OUT_BASE ROOMS VIEWERS_VIA

if [ -z "${KAIGI_SBS_IN_NETNS:-}" ]; then
  # Outside the namespace: build, install Janus if missing (needs the package registry).
  (cd "$ROOT" && cargo build --quiet --release -p kaigi -p kaigi-bench)
  if [[ " $SERVERS " == *" janus "* ]] && ! command -v janus >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
  fi
  # A private namespace with loopback, plus a veth holding 127.0.0.2 for Janus (libnice skips
  # loopback interfaces): see netns_lo.sh.
  exec env KAIGI_SBS_IN_NETNS=1 "$ROOT/benches/loadgen/janus/netns_lo.sh" bash "$SELF" "${ARGS[@]}"
fi

NCPU=$(nproc)
GEN_CPUS=1-$((NCPU - 1))
[ "$NCPU" -gt 1 ] || GEN_CPUS=0
RUN=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$RUN"' EXIT
DAY=$(date -u +%Y-%m-%d)
if [ "$VIEWERS_VIA" = whep ]; then
  OUT=${OUT_BASE:-"$ROOT/benches/results/broadcast-$DAY-$SUBSCRIBERS"}  # without .json/.md
else
  OUT=${OUT_BASE:-"$ROOT/benches/results/side-by-side-$DAY-$SCENARIO"}
fi
mkdir -p "$ROOT/benches/results"

wait_http() { # URL
  for _ in $(seq 100); do
    if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import ssl, sys, urllib.request
urllib.request.urlopen(sys.argv[1], context=ssl._create_unverified_context(), timeout=1)
PY
    sleep 0.1
  done
  return 1
}

peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

run_server() { # NAME
  local name=$1 pid url bind metrics=() via=()
  case "$name" in
    kaigi)
      KAIGI_LIMITS__MAX_PARTICIPANTS_PER_ROOM=5000 KAIGI_LIMITS__WS_CONNECTS_PER_IP_PER_MINUTE=0 KAIGI_LIMITS__OFFERS_PER_IP_PER_MINUTE=0 taskset -c 0 "$TARGET/release/kaigi" --bind 127.0.0.1 --public-ip 127.0.0.1 \
        --http-port 18443 --media-port 11000 --workers 1 --data-dir "$RUN/kaigi-data" \
        >"$RUN/kaigi.log" 2>&1 &
      pid=$! url=https://127.0.0.1:18443 bind=127.0.0.1 metrics=(--server-metrics https://127.0.0.1:18443/metrics)
      via=(--viewers-via "$VIEWERS_VIA")
      wait_http "$url/healthz" || { tail "$RUN/kaigi.log"; return 1; }
      ;;
    janus)
      sed "s|@CONF@|$ROOT/benches/loadgen/janus/conf|" "$ROOT/benches/loadgen/janus/conf/janus.jcfg" >"$RUN/janus.jcfg"
      taskset -c 0 janus -F "$ROOT/benches/loadgen/janus/conf" -C "$RUN/janus.jcfg" -o -L "$RUN/janus.log" \
        >"$RUN/janus.stdout" 2>&1 </dev/null &
      pid=$! url=http://127.0.0.1:8088/janus bind=127.0.0.2
      wait_http "$url/info" || { tail "$RUN/janus.stdout"; return 1; }
      ;;
  esac
  echo "[$name] pid $pid; load: $SCENARIO, $ROOMS room(s) of $SUBSCRIBERS subscribers (via $VIEWERS_VIA), ${DURATION}s, ${KBPS} kbps" >&2
  grep '^Udp:' /proc/net/snmp | tail -1 >"$RUN/$name.udp0"
  taskset -c "$GEN_CPUS" "$TARGET/release/loadgen" --target "$name" --url "$url" --bind "$bind" \
    --scenario "$SCENARIO" --rooms "$ROOMS" --subscribers "$SUBSCRIBERS" --duration "$DURATION" --ramp "$RAMP" \
    --video-kbps "$KBPS" --room-prefix "sbs" --server-pid "$pid" "${metrics[@]}" "${via[@]}" --out "$RUN/$name.json"
  grep '^Udp:' /proc/net/snmp | tail -1 >"$RUN/$name.udp1"
  peak_rss_kib "$pid" >"$RUN/$name.rss"
  kill -KILL "$pid" 2>/dev/null || true  # measured already; no drain needed
  wait "$pid" 2>/dev/null || true
}

for s in $SERVERS; do
  run_server "$s" || echo "[$s] FAILED" >&2
done

python3 - "$RUN" "$OUT" "$SERVERS" "$(git -C "$ROOT" rev-parse --short HEAD)" "${ARGS[@]}" <<'PY'
import json, os, sys, datetime, platform
run, out, servers, commit = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
cpu = open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()
machine = f"{os.cpu_count()} cores, {cpu}; server pinned to CPU 0, load generator on the others"
rows = {}
for s in servers:
    try:
        r = json.load(open(f"{run}/{s}.json"))
    except (OSError, ValueError):
        rows[s] = {"error": "no result"}
        continue
    rss_kib = int(open(f"{run}/{s}.rss").read().strip() or 0)
    # The namespace's UDP counters over the load (/proc/net/snmp): datagrams dropped at full
    # receive buffers (on loopback, nearly all at the load generator's sockets) and send errors.
    udp_hdr = open("/proc/net/snmp").read().split("Udp:")[1].split()[:9]
    u0, u1 = (open(f"{run}/{s}.udp{i}").read().split()[1:] for i in (0, 1))
    udp = {k: int(b) - int(a) for k, a, b in zip(udp_hdr, u0, u1)}
    t, c, ss = r["totals"], r["cpu"], r.get("steady_state", {})
    fwd = t["packets_received"]
    cpu_s = c.get("server_cpu_s") or 0.0
    subs = r["params"]["subscribers"] * r["params"].get("rooms", 1)
    rows[s] = {
        "packets_forwarded": fwd,
        "packets_per_second": ss.get("received_pps"),
        "server_cpu_seconds": cpu_s,
        "packets_per_cpu_second": round(fwd / cpu_s) if cpu_s else None,
        "cpu_us_per_packet": round(cpu_s * 1e6 / fwd, 2) if fwd else None,
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "rss_per_subscriber_kib": round(rss_kib / subs, 1) if subs else None,
        "loss_pct": t["loss_pct"],
        "delay_ms": ss.get("delay_ms") or t["delay_ms"],
        "join_ms": t["join_ms"],
        "first_packet_ms": t.get("first_packet_ms"),
        "loadgen_cpu_seconds": c.get("loadgen_cpu_s"),
        "cpu_us_per_packet_steady": c.get("server_us_per_packet_steady"),
        "packets_per_cpu_second_steady": round(1e6 / c["server_us_per_packet_steady"]) if c.get("server_us_per_packet_steady") else None,
        "server_cpu_pct_steady": c.get("server_cpu_steady_pct"),
        "server_forward_delay_ms": ss.get("server_forward_delay_ms"),
        "udp_counters": {k: udp.get(k) for k in ("InDatagrams", "RcvbufErrors", "SndbufErrors", "InErrors")},
        "loadgen_cpu_pct_steady": c.get("loadgen_cpu_steady_pct"),
        "server_cpu_pct_whole_run": c.get("server_cpu_pct"),
        "server_cpu_ms_per_subscriber_second_steady": round(c["server_cpu_steady_pct"] * 10 / subs, 3) if subs and c.get("server_cpu_steady_pct") is not None else None,
        "viewers_via": r["params"].get("viewers_via", "ws"),
        "clients": f'{r["clients"]["subscribed"]} of {r["clients"]["planned"]} receiving, {r["clients"]["errors"]} errors'
                   + (f', {r["clients"].get("whep_deleted", 0)} WHEP sessions DELETEd (2xx)' if r["params"].get("viewers_via") == "whep" else ""),
        "raw": r,
    }
doc = {"date": datetime.datetime.utcnow().isoformat() + "Z", "commit": commit, "machine": machine,
       "command": "sudo benches/side_by_side.sh " + " ".join(sys.argv[5:]), "servers": rows}
json.dump(doc, open(out + ".json", "w"), indent=2)
def f(v, unit=""):
    return "—" if v is None else f"{v:,}{unit}"
whep = any(v.get("viewers_via") == "whep" for v in rows.values())
title = "Broadcast: 1 publisher (/ws), viewers over WHEP" if whep else "Side by side"
lines = [f"# {title}, {doc['date'][:10]} (commit {commit})", "", f"Machine: {machine}.", "",
         f"Command: `{doc['command']}`", "",
         "| | " + " | ".join(servers) + " |", "|---|" + "---|" * len(servers)]
def row(label, key, fmt=lambda v: f(v)):
    lines.append(f"| {label} | " + " | ".join(fmt(rows[s].get(key)) if "error" not in rows[s] else "failed" for s in servers) + " |")
row("viewers via", "viewers_via", lambda v: v or "—")
row("clients", "clients", lambda v: v or "—")
row("packets forwarded", "packets_forwarded")
row("packets/s forwarded", "packets_per_second")
row("server CPU seconds", "server_cpu_seconds")
row("packets per CPU-second (one core), whole run incl. joins", "packets_per_cpu_second")
row("CPU µs per forwarded packet, whole run incl. joins", "cpu_us_per_packet")
row("steady state: server CPU % of one core", "server_cpu_pct_steady")
row("steady state: CPU µs per forwarded packet", "cpu_us_per_packet_steady")
row("steady state: packets per CPU-second (one core)", "packets_per_cpu_second_steady")
row("server CPU % of one core, whole run incl. joins", "server_cpu_pct_whole_run")
row("steady state: server CPU ms per subscriber per second", "server_cpu_ms_per_subscriber_second_steady")
row("peak RSS (MiB)", "peak_rss_mib")
row("RSS per subscriber (KiB)", "rss_per_subscriber_kib")
row("loss %", "loss_pct")
row("delay p50 / p99, steady state (ms)", "delay_ms", lambda d: f"{d['p50']} / {d['p99']}" if d else "—")
row("added forwarding delay p50 / p99, steady state (ms, server's own histogram)", "server_forward_delay_ms",
    lambda d: f"{d['p50']} / {d['p99']}" if d and d.get("p50") is not None else "—")
row("join p50 / p99 (ms)" + (" (WHEP: POST sent → 201 answer)" if whep else ""), "join_ms", lambda d: f"{d['p50']} / {d['p99']}" if d else "—")
row("join → first packet p50 / p99 (ms)" + (" (WHEP: POST sent → first RTP)" if whep else ""), "first_packet_ms", lambda d: f"{d['p50']} / {d['p99']}" if d else "—")
row("load generator CPU s", "loadgen_cpu_seconds")
row("steady state: load generator CPU % (of its CPUs, all threads)", "loadgen_cpu_pct_steady")
row("UDP datagrams dropped at full receive buffers / send buffer errors (netns counters)", "udp_counters",
    lambda u: f"{u['RcvbufErrors']:,} / {u['SndbufErrors']:,}" if u else "—")
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results: $OUT.json $OUT.md"
