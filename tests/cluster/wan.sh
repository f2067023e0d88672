#!/usr/bin/env bash
# A broadcast across "WAN links": a head office and three branch offices,
# each its own network namespace, joined by veth pairs shaped with tc netem
# (delay and rate, like a thin leased line). Real redis-server, real kaigi
# processes, GStreamer publishing over WHIP, aiortc players decoding.
#
#   hq      (this script's private namespace): Redis, the origin node, the encoder
#   site-a  two edge nodes, N viewers              — wan-a, 10.99.1.0/24
#   site-b  one edge node, N viewers (+1 later)     — wan-b, 10.99.2.0/24
#   site-c  no node, one viewer (served by the origin) — wan-c, 10.99.3.0/24
#
# Every viewer is given the origin's URL; the origin sends it to its site's
# node by its subnet (cluster.subnets). Checked:
#   1. every viewer decodes the picture and the tone;
#   2. each site's WAN link carries one copy of the broadcast, however many
#      watch there: bytes on wan-a and wan-b (N viewers behind an edge)
#      against wan-c (one viewer, one direct copy);
#   3. the edge serving site A is killed (SIGKILL): its viewers watch again
#      via the site's other node within 5 s, by themselves;
#   4. Redis is stopped for 10 s: nobody's picture stops; after it returns a
#      new viewer joins and plays;
#   5. the encoder stops: a branch node's viewer page says "ended" too.
# Results: $OUT/results.json (OUT defaults to target/cluster-wan). N: WAN_VIEWERS (3);
# the link: WAN_RATE (20mbit), WAN_DELAY (15ms, where the kernel has netem).
#
# Run as root (it makes network namespaces; the machine's own interfaces are
# never used):  sudo tests/cluster/wan.sh
# Needs: redis-server, python3-gi + GStreamer (Debian), the interop venv
# (tests/interop/run.sh --setup), a release build of kaigi.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
KAIGI_BIN="${KAIGI_BIN:-$REPO/target/release/kaigi}"
VENV="${KAIGI_VENV:-$REPO/target/venv-interop}"
OUT="${OUT:-$REPO/target/cluster-wan}"
RATE="${WAN_RATE:-20mbit}"
# Viewers at each of sites A and B (site C has one).
N="${WAN_VIEWERS:-3}"
DELAY="${WAN_DELAY:-15ms}"
ROOM=kaiken

say() { echo "cluster-wan: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }

if [[ "${KAIGI_WAN_INNER:-}" != 1 ]]; then
    [[ $EUID -eq 0 ]] || { say "run as root (network namespaces)"; exit 2; }
    [[ -x "$KAIGI_BIN" ]] || { say "no kaigi binary at $KAIGI_BIN (cargo build --release -p kaigi)"; exit 2; }
    "$VENV/bin/python" -c 'import aiortc' 2>/dev/null ||
        { say "no aiortc venv at $VENV (tests/interop/run.sh --setup)"; exit 2; }
    command -v redis-server >/dev/null || { say "redis-server is missing"; exit 2; }
    exec unshare -n env KAIGI_WAN_INNER=1 bash "$0" "$@"
fi

rm -rf "$OUT"
mkdir -p "$OUT"
ip link set lo up
PIDS=()
HOLDERS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${HOLDERS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# ---- sites ----------------------------------------------------------------------
# A WAN link's shape: netem (delay and rate) where the kernel has it, else htb
# (rate only, a short drop-tail queue as a leased line's router has).
if unshare -n tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
    SHAPER="netem delay $DELAY rate $RATE"
else
    SHAPER="htb"
    DELAY="0ms (no netem in this kernel)"
fi
shape() { # DEV (in the current namespace)
    if [[ $SHAPER == htb ]]; then
        tc qdisc add dev "$1" root handle 1: htb default 10
        tc class add dev "$1" parent 1: classid 1:10 htb rate "$RATE" ceil "$RATE" quantum 1514
        tc qdisc add dev "$1" parent 1:10 handle 10: pfifo limit 100
    else
        # shellcheck disable=SC2086
        tc qdisc add dev "$1" root $SHAPER
    fi
}
declare -A NS
site() { # NAME INDEX: a namespace held by a sleeping process, a shaped veth to hq
    local name=$1 i=$2 pid
    unshare -n sleep 3600 &
    pid=$!
    HOLDERS+=("$pid")
    for _ in $(seq 100); do
        [[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ]] && break
        sleep 0.01
    done
    NS[$name]=$pid
    ip link add "wan-$name" type veth peer name lan netns "$pid"
    ip addr add "10.99.$i.1/24" dev "wan-$name"
    ip link set "wan-$name" up
    shape "wan-$name"
    nsenter -t "$pid" -n bash -c "
        ip link set lo up
        ip addr add 10.99.$i.2/24 dev lan
        ip addr add 10.99.$i.3/24 dev lan
        ip link set lan up
        ip route add default via 10.99.$i.1
        $(declare -f shape); RATE=$RATE SHAPER='$SHAPER' shape lan"
}
site a 1
site b 2
site c 3
in_site() { local s=$1; shift; nsenter -t "${NS[$s]}" -n "$@"; }

# ---- Redis and the nodes ----------------------------------------------------------
redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save '' --appendonly no \
    >"$OUT/redis.log" 2>&1 &
REDIS=$!
PIDS+=("$REDIS")

node() { # ID SITE IP (the node's address; its URL is http://IP:18080)
    local id=$1 site=$2 ip=$3 dir="$OUT/$1"
    mkdir -p "$dir"
    cat >"$dir/kaigi.toml" <<EOF
[server]
tls = false
[auth]
token_secret = "wan-test-secret-shared-by-all-nodes-0123456789"
[auth.stream_keys]
$ROOM = "encoder-key"
[cluster]
redis_url = "redis://10.99.1.1:6379/0"
node_id = "$id"
site = "$site"
url = "http://$ip:18080"
heartbeat_secs = 1
[cluster.subnets]
"10.99.1.0/24" = "site-a"
"10.99.2.0/24" = "site-b"
"10.99.3.0/24" = "site-c"
EOF
    echo "--config $dir/kaigi.toml --bind $ip --public-ip $ip --http-port 18080 --media-port 11000 --data-dir $dir --workers 1"
}
start_node() { # ID SITE IP [NS]
    local args
    args=$(node "$1" "$2" "$3")
    if [[ -n "${4:-}" ]]; then
        # shellcheck disable=SC2086
        # (nsenter, not a shell function: $! must be kaigi's own pid for the SIGKILL)
        nsenter -t "${NS[$4]}" -n env RUST_LOG=info "$KAIGI_BIN" $args >"$OUT/$1.log" 2>&1 &
    else
        # shellcheck disable=SC2086
        env RUST_LOG=info "$KAIGI_BIN" $args >"$OUT/$1.log" 2>&1 &
    fi
    PIDS+=("$!")
    eval "PID_${1//-/_}=$!"
}
start_node origin hq 10.99.1.1
start_node edge-a1 site-a 10.99.1.2 a
start_node edge-a2 site-a 10.99.1.3 a
start_node edge-b site-b 10.99.2.2 b
http_ok() { # NS URL
    if [[ $1 == hq ]]; then curl -sf -o /dev/null "$2"; else in_site "$1" curl -sf -o /dev/null "$2"; fi
}
for n in "hq 10.99.1.1" "a 10.99.1.2" "a 10.99.1.3" "b 10.99.2.2"; do
    set -- $n
    for _ in $(seq 100); do http_ok "$1" "http://$2:18080/readyz" && break; sleep 0.1; done
    http_ok "$1" "http://$2:18080/readyz" || die "node $2 did not start (see $OUT/*.log)"
done
sleep 2.5 # two heartbeats: every node knows the others
say "nodes up: origin (hq), edge-a1 + edge-a2 (site A), edge-b (site B); WAN $DELAY, $RATE each way"

# ---- the broadcast ----------------------------------------------------------------
/usr/bin/python3 "$REPO/tests/interop/gst_whip_publisher.py" --url "http://10.99.1.1:18080/whip/$ROOM" \
    --key encoder-key --seconds 300 --address 10.99.1.1 >"$OUT/encoder.log" 2>&1 &
ENCODER=$!
PIDS+=("$ENCODER")
for _ in $(seq 150); do
    curl -s "http://10.99.1.1:18080/watch/$ROOM/status" | grep -q '"live":true' && break
    sleep 0.1
done
curl -s "http://10.99.1.1:18080/watch/$ROOM/status" | grep -q '"live":true' || die "the broadcast never went live (see $OUT/encoder.log)"
say "broadcast live at the origin"

# ---- viewers ----------------------------------------------------------------------
VIEW_SECONDS=50
viewer() { # SITE NAME SECONDS
    in_site "$1" "$VENV/bin/python" "$HERE/viewer.py" --url http://10.99.1.1:18080 --room "$ROOM" \
        --seconds "$3" --name "$2" >"$OUT/$2.out" 2>"$OUT/$2.err" &
    PIDS+=("$!")
}
for i in $(seq "$N"); do viewer a "a$i" $VIEW_SECONDS; viewer b "b$i" $VIEW_SECONDS; done
viewer c c1 $VIEW_SECONDS
ALL=$((2 * N + 1))
for _ in $(seq 300); do
    n=$(cat "$OUT"/*.out 2>/dev/null | grep -c '^playing' || true)
    [[ $n -ge $ALL ]] && break
    sleep 0.1
done
[[ $n -ge $ALL ]] || { tail -n 3 "$OUT"/*.err >&2; die "only $n of $ALL viewers are playing"; }
say "$ALL viewers playing: $(grep -h '^playing' "$OUT"/a*.out "$OUT"/b*.out "$OUT"/c1.out | sort | uniq -c | tr -s ' ' | paste -sd, -)"

# ---- bytes per WAN link -----------------------------------------------------------
# /proc/net/dev is this namespace's (/sys/class/net is the mount's, the machine's).
tx() { sed 's/:/ /' /proc/net/dev | awk -v d="wan-$1" '$1 == d { print $10 }'; }
sleep 2
declare -A T0 T1
for s in a b c; do T0[$s]=$(tx $s); done
WINDOW=10
sleep $WINDOW
for s in a b c; do T1[$s]=$(tx $s); done
for s in a b c; do say "wan-$s carried $(( (T1[$s] - T0[$s]) / WINDOW / 125 )) kbit/s towards site $s"; done

# ---- an edge dies -----------------------------------------------------------------
SERVING_A=$(grep -h '^playing' "$OUT"/a1.out | awk '{print $2}')
case "$SERVING_A" in
    http://10.99.1.2:18080) VICTIM=$PID_edge_a1; VICTIM_NAME=edge-a1 ;;
    http://10.99.1.3:18080) VICTIM=$PID_edge_a2; VICTIM_NAME=edge-a2 ;;
    *) die "site A's viewers are served by $SERVING_A, not by a site-A edge" ;;
esac
KILLED_AT=$(date +%s.%N)
kill -9 "$VICTIM"; wait "$VICTIM" 2>/dev/null || true
say "killed $VICTIM_NAME (SIGKILL), which served site A"
sleep 8

# ---- Redis goes away for 10 s -----------------------------------------------------
kill "$REDIS"
wait "$REDIS" 2>/dev/null || true
REDIS_DOWN_AT=$(date +%s.%N)
say "Redis stopped"
sleep 10
redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save '' --appendonly no \
    >>"$OUT/redis.log" 2>&1 &
REDIS=$!
PIDS+=("$REDIS")
REDIS_UP_AT=$(date +%s.%N)
say "Redis back"
sleep 3
viewer b late 8
wait_for_reports() {
    for _ in $(seq 600); do
        local done=0
        for f in "$OUT"/*.out; do
            grep -q '^{' "$f" 2>/dev/null && done=$((done + 1))
        done
        [[ $done -ge $((ALL + 1)) ]] && return 0
        sleep 0.1
    done
    return 1
}
wait_for_reports || { tail -n 3 "$OUT"/*.err >&2; die "viewers did not report"; }

# ---- the broadcast ends: the edges say so too ----------------------------------------
kill -TERM "$ENCODER"
ENDED_AT=$(date +%s.%N)
ENDED_S=""
for _ in $(seq 150); do
    if in_site b curl -s "http://10.99.2.2:18080/watch/$ROOM/status" | grep -q '"live":false'; then
        ENDED_S=$(awk -v a="$ENDED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
        break
    fi
    sleep 0.1
done
[[ -n "$ENDED_S" ]] || die "site B's node still says live 15 s after the encoder stopped"
say "the encoder stopped: site B's node says the broadcast ended after ${ENDED_S} s"

# ---- verdict ----------------------------------------------------------------------
"$VENV/bin/python" - "$OUT" "${T0[a]}" "${T1[a]}" "${T0[b]}" "${T1[b]}" "${T0[c]}" "${T1[c]}" "$WINDOW" \
    "$KILLED_AT" "$REDIS_DOWN_AT" "$REDIS_UP_AT" "$VICTIM_NAME" "$RATE" "$DELAY" "$N" "$ENDED_S" <<'PY'
import json, sys
out = sys.argv[1]
a0, a1, b0, b1, c0, c1, window = map(float, sys.argv[2:9])
victim, rate, delay, n = sys.argv[12], sys.argv[13], sys.argv[14], int(sys.argv[15])
ended_s = float(sys.argv[16])
site_a = [f"a{i}" for i in range(1, n + 1)]
site_b = [f"b{i}" for i in range(1, n + 1)]
reports = {}
for name in site_a + site_b + ["late", "c1"]:
    line = [l for l in open(f"{out}/{name}.out") if l.startswith("{")][-1]
    reports[name] = json.loads(line)
fails = []
for name, r in reports.items():
    if "error" in r:
        fails.append(f"{name}: {r['error']}")
    elif r["video_frames"] < (60 if name != "late" else 20) or r["audio_frames"] < 100:
        fails.append(f"{name} decoded too little: {r['video_frames']} frames, {r['audio_frames']} audio")
wan = {"a": (a1 - a0) / window, "b": (b1 - b0) / window, "c": (c1 - c0) / window}
copies = {s: wan[s] / wan["c"] for s in "ab"}
for s in "ab":
    if not 0.5 <= copies[s] <= 1.5:
        fails.append(f"wan-{s} carried {copies[s]:.2f} copies of the broadcast for {n} viewers (want ~1)")
gaps = []
for name in site_a:
    f = reports[name].get("failovers", [])
    if not f or f[0]["gap_s"] is None or f[0]["gap_s"] > 5.0:
        fails.append(f"{name} did not watch again within 5 s after its edge died: {f}")
    else:
        gaps.append(f[0]["gap_s"])
        if "10.99.1." not in f[0]["to"]:
            fails.append(f"{name} went on at {f[0]['to']}, not at site A's other node")
for name in site_b + ["c1"]:
    if reports[name].get("failovers"):
        fails.append(f"{name} lost its picture (Redis away or the edge kill disturbed it): {reports[name]['failovers']}")
result = {
    "wan_rate": rate, "wan_delay": delay,
    "wan_bytes_per_second": wan, "copies_per_link": copies,
    "viewers_per_site": {"a": n, "b": n, "c": 1},
    "killed": victim, "failover_gaps_s": gaps,
    "after_redis_restart": reports["late"].get("first_frame_s"),
    "edge_says_ended_after_s": ended_s,
    "viewers": reports, "failures": fails,
}
json.dump(result, open(f"{out}/results.json", "w"), indent=2)
print(f"cluster-wan: WAN link bytes per second: site A {wan['a']:.0f} ({n} viewers, {copies['a']:.2f} copies), "
      f"site B {wan['b']:.0f} ({n} viewers, {copies['b']:.2f} copies), site C {wan['c']:.0f} (1 viewer, direct)", file=sys.stderr)
print(f"cluster-wan: {victim} killed: site A's viewers watching again after {', '.join(f'{g:.2f}' for g in gaps)} s", file=sys.stderr)
print(f"cluster-wan: Redis away 10 s: site B and C viewers never stalled; a new viewer after its return: first frame in {reports['late'].get('first_frame_s')} s", file=sys.stderr)
if fails:
    for f in fails:
        print(f"cluster-wan: FAIL: {f}", file=sys.stderr)
    sys.exit(1)
print("cluster-wan: PASS", file=sys.stderr)
PY
