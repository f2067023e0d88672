#!/usr/bin/env bash
# End-to-end browser test: kaigi + three headless Chromium participants, all inside a private
# network namespace that has nothing but loopback.
#
# Usage (as root): tests/e2e/run.sh [udp|tcp]
#   udp  (default) media over UDP; every selected ICE candidate pair must be UDP
#   tcp  UDP to and from kaigi's ports is dropped by the firewall; media must go over ICE-TCP
#
# Environment:
#   KAIGI_BIN          server binary (default: ${CARGO_TARGET_DIR:-target}/release/kaigi)
#   KAIGI_EXTRA_ARGS   extra arguments appended to kaigi's command line (e.g. "--web-dir web-client")
#   KAIGI_HTTP_PORT    HTTPS port (default 18443)
#   KAIGI_MEDIA_PORT   media port, UDP and ICE-TCP (default 11000)
#   KAIGI_E2E_ARTIFACTS  folder for kaigi.log, results.json and failure dumps
#                      (default: ${CARGO_TARGET_DIR:-target}/e2e/MODE)
#   KAIGI_E2E_OUT      results JSON (default: $KAIGI_E2E_ARTIFACTS/results.json)
#   RUST_LOG           kaigi's log filter (default info)
#   KAIGI_E2E_FILTER   run only the tests whose name matches this regular expression
#                      (node --test-name-pattern), e.g. KAIGI_E2E_FILTER=simulcast
set -euo pipefail

MODE=${1:-udp}
case "$MODE" in
  udp | tcp) ;;
  *) echo "usage: $0 [udp|tcp]" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/e2e/run.sh: must run as root (it makes a network namespace and firewall rules)" >&2
  exit 2
fi

# Re-exec in a private network namespace: only `lo`, so nothing can use a real interface.
if [ "${KAIGI_E2E_IN_NETNS:-}" != "$MODE" ]; then
  exec env KAIGI_E2E_IN_NETNS="$MODE" unshare -n -- bash "$SELF" "$@"
fi

say() { echo "[e2e:$MODE] $*"; }
die() { echo "[e2e:$MODE] ERROR: $*" >&2; exit 1; }

ip link set lo up
others=$(ip -o link show | awk -F': ' '$2 != "lo" {print $2}')
[ -z "$others" ] || die "network namespace is not private (has: $others)"

TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
KAIGI_BIN=${KAIGI_BIN:-$TARGET/release/kaigi}
HTTP_PORT=${KAIGI_HTTP_PORT:-18443}
MEDIA_PORT=${KAIGI_MEDIA_PORT:-11000}
ART=${KAIGI_E2E_ARTIFACTS:-$TARGET/e2e/$MODE}
mkdir -p "$ART"
ART=$(cd "$ART" && pwd)
rm -f "$ART"/kaigi.log "$ART"/kaigi-b.log "$ART"/redis.log "$ART"/metrics.txt "$ART"/results.json "$ART"/meeting-* "$ART"/language-* "$ART"/page-*.log
OUT=${KAIGI_E2E_OUT:-$ART/results.json}

[ -x "$KAIGI_BIN" ] || die "no server binary at $KAIGI_BIN (cargo build --release -p kaigi, or set KAIGI_BIN)"
command -v node >/dev/null || die "node is not installed"
[ -x /usr/bin/chromium ] || [ -n "${KAIGI_CHROMIUM:-}" ] || die "/usr/bin/chromium is missing (apt-get install chromium)"
[ -x /usr/sbin/slapd ] || die "/usr/sbin/slapd is missing (apt-get install slapd): the sign-in test needs a directory"
[ -x /usr/bin/redis-server ] || die "/usr/bin/redis-server is missing (apt-get install redis-server): the cluster test needs it"
[ -f "$HERE/node_modules/playwright-core/package.json" ] || die "playwright-core missing: run 'npm ci' in tests/e2e"

# --- tcp mode: drop every UDP datagram to or from kaigi's ports -----------------------------------
UDP_LO=$MEDIA_PORT
UDP_HI=$((MEDIA_PORT + 99)) # room for a server that spreads media over a few ports
block_udp() {
  local range="$UDP_LO:$UDP_HI" ok=""
  if command -v iptables >/dev/null 2>&1; then
    if iptables -w -A INPUT -p udp --dport "$range" -j DROP 2>/dev/null &&
      iptables -w -A INPUT -p udp --sport "$range" -j DROP &&
      iptables -w -A INPUT -p udp --dport "$HTTP_PORT" -j DROP &&
      iptables -w -A INPUT -p udp --sport "$HTTP_PORT" -j DROP; then
      ok=iptables
      if command -v ip6tables >/dev/null 2>&1; then
        ip6tables -w -A INPUT -p udp --dport "$range" -j DROP 2>/dev/null || true
        ip6tables -w -A INPUT -p udp --sport "$range" -j DROP 2>/dev/null || true
      fi
    fi
  fi
  if [ -z "$ok" ] && command -v nft >/dev/null 2>&1; then
    if nft -f - <<EOF; then
table inet kaigi_e2e {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport { $UDP_LO-$UDP_HI, $HTTP_PORT } drop
    udp sport { $UDP_LO-$UDP_HI, $HTTP_PORT } drop
  }
}
EOF
      ok=nft
    fi
  fi
  [ -n "$ok" ] || die "could not install a UDP block: neither iptables nor nft worked (apt-get install iptables)"
  say "UDP to/from ports $UDP_LO-$UDP_HI and $HTTP_PORT dropped ($ok)"
}

# Proves the block: UDP to and from the media port is lost, UDP elsewhere and TCP on it still work.
verify_udp_block() {
  python3 - "$MEDIA_PORT" "$UDP_HI" <<'EOF'
import socket, sys
media, hi = int(sys.argv[1]), int(sys.argv[2])
def udp(src, dst):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("127.0.0.1", dst)); r.settimeout(0.5)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", src))
    for _ in range(3): s.sendto(b"probe", ("127.0.0.1", r.getsockname()[1]))
    try: r.recv(100); got = True
    except socket.timeout: got = False
    r.close(); s.close(); return got
def tcp(port):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("127.0.0.1", port)); l.listen(1)
    c = socket.create_connection(("127.0.0.1", port), timeout=2); a, _ = l.accept(); c.sendall(b"x"); ok = a.recv(1) == b"x"
    for x in (a, c, l): x.close()
    return ok
control = hi + 1000
fails = []
if udp(0, media): fails.append(f"UDP to port {media} still arrives")
if udp(media, 0): fails.append(f"UDP from port {media} still arrives")
if not udp(0, control): fails.append(f"control: UDP to unblocked port {control} does not arrive")
if not tcp(media): fails.append(f"TCP on port {media} is blocked too")
if fails: sys.exit("UDP block check failed: " + "; ".join(fails))
print(f"[e2e:tcp] verified: UDP to/from {media} dropped, UDP to {control} delivered, TCP on {media} open")
EOF
}

if [ "$MODE" = tcp ]; then
  block_udp
  verify_udp_block || die "the UDP block does not work"
fi

# --- kaigi -------------------------------------------------------------------------------------
DATA=$(mktemp -d "${TMPDIR:-/tmp}/kaigi-e2e-data.XXXXXX")
KPID=""
SLAPD_PID=""
REDIS_PID=""
KPID_B=""
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
  for p in "$SLAPD_PID" "$REDIS_PID" "$KPID_B"; do
    if [ -n "$p" ]; then kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  if [ -n "$KPID" ] && kill -0 "$KPID" 2>/dev/null; then
    kill -TERM "$KPID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KPID" 2>/dev/null || true
    wait "$KPID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

# The sign-in test's staff directory (tests/ldap: Debian's slapd on loopback), and room rules:
# e2e-pw-* rooms have a password, e2e-staff-* rooms are for signed-in staff.
LDAP_PORT=${KAIGI_E2E_LDAP_PORT:-13389}
bash "$HERE/../ldap/slapd.sh" "$DATA/ldap" "$LDAP_PORT" >"$ART/slapd.log" 2>&1 &
SLAPD_PID=$!
cat >"$DATA/kaigi.toml" <<CONF
[directory]
url = "ldap://127.0.0.1:$LDAP_PORT"
base_dn = "ou=people,dc=pref,dc=example"
user_filter = "(&(objectClass=inetOrgPerson)(uid={user}))"
moderator_group = "cn=kaigi-moderators,ou=groups,dc=pref,dc=example"
publisher_group = "cn=kaigi-publishers,ou=groups,dc=pref,dc=example"
[rooms."e2e-pw-*"]
access = "password"
password = "e2e-room-password"
[rooms."e2e-staff-*"]
access = "directory"
CONF

# Over UDP the server is one node of a two-node cluster (Redis on loopback): the cluster test
# meets on node B, kills it, and the pages move to this node by themselves.
HTTP_PORT_B=$((HTTP_PORT + 1))
MEDIA_PORT_B=$((MEDIA_PORT + 1))
REDIS_PORT=${KAIGI_E2E_REDIS_PORT:-16379}
if [ "$MODE" = udp ]; then
  /usr/bin/redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$ART/redis.log" 2>&1 &
  REDIS_PID=$!
  # The nodes relay broadcasts to each other over HTTPS: one certificate from an "office CA"
  # (made here with openssl) for both, the CA as cluster.ca_file, and one token secret.
  PKI="$DATA/pki"
  mkdir -p "$PKI"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.pem" \
    -days 2 -subj "/CN=kaigi e2e office CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/node.key" -out "$PKI/node.csr" \
    -subj "/CN=127.0.0.1" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$PKI/ext.cnf"
  openssl x509 -req -in "$PKI/node.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
    -out "$PKI/node.pem" -days 2 -extfile "$PKI/ext.cnf" >/dev/null 2>&1 || die "openssl could not make the nodes' certificate"
  SECRET="e2e-cluster-secret-$RANDOM$RANDOM$RANDOM$RANDOM"
  cluster_conf() { # NODE_ID HTTP_PORT
    printf '[server]\ntls_cert = "%s"\ntls_key = "%s"\n[auth]\ntoken_secret = "%s"\n' "$PKI/node.pem" "$PKI/node.key" "$SECRET"
    printf '[cluster]\nredis_url = "redis://127.0.0.1:%s/0"\nnode_id = "%s"\nurl = "https://127.0.0.1:%s"\nheartbeat_secs = 1\nca_file = "%s"\n' \
      "$REDIS_PORT" "$1" "$2" "$PKI/ca.pem"
  }
  cluster_conf node-a "$HTTP_PORT" >>"$DATA/kaigi.toml"
  mkdir -p "$DATA/b"
  cluster_conf node-b "$HTTP_PORT_B" >"$DATA/b/kaigi.toml"
  RUST_LOG=${RUST_LOG:-info} "$KAIGI_BIN" --config "$DATA/b/kaigi.toml" --bind 127.0.0.1 --public-ip 127.0.0.1 \
    --http-port "$HTTP_PORT_B" --media-port "$MEDIA_PORT_B" --data-dir "$DATA/b" >"$ART/kaigi-b.log" 2>&1 &
  KPID_B=$!
fi

EXTRA=()
if [ -n "${KAIGI_EXTRA_ARGS:-}" ]; then read -r -a EXTRA <<<"$KAIGI_EXTRA_ARGS"; fi
say "starting $KAIGI_BIN (https 127.0.0.1:$HTTP_PORT, media 127.0.0.1:$MEDIA_PORT udp+tcp)${EXTRA[*]:+ with ${EXTRA[*]}}"
# The admin page test signs in with this key.
ADMIN_KEY="e2e-admin-key-$RANDOM$RANDOM$RANDOM"
KAIGI_ADMIN__API_KEY="$ADMIN_KEY" RUST_LOG=${RUST_LOG:-info} "$KAIGI_BIN" --config "$DATA/kaigi.toml" --bind 127.0.0.1 --public-ip 127.0.0.1 \
  --http-port "$HTTP_PORT" --media-port "$MEDIA_PORT" --data-dir "$DATA" "${EXTRA[@]}" \
  >"$ART/kaigi.log" 2>&1 &
KPID=$!

server_log_tail() {
  echo "[e2e:$MODE] --- last lines of $ART/kaigi.log ---" >&2
  tail -n "${1:-60}" "$ART/kaigi.log" >&2 || true
}

URL="https://127.0.0.1:$HTTP_PORT"
if ! node "$HERE/http-get.mjs" "$URL/healthz" --wait 30 --pid "$KPID" >/dev/null; then
  server_log_tail
  die "kaigi did not become healthy"
fi
say "kaigi (pid $KPID) is healthy"
if [ -n "$KPID_B" ]; then
  node "$HERE/http-get.mjs" "https://127.0.0.1:$HTTP_PORT_B/healthz" --wait 30 --pid "$KPID_B" >/dev/null ||
    die "kaigi node B did not become healthy (see $ART/kaigi-b.log)"
  say "cluster: node B (pid $KPID_B) is healthy; Redis on 127.0.0.1:$REDIS_PORT"
fi

FILTER=()
if [ -n "${KAIGI_E2E_FILTER:-}" ]; then FILTER=(--test-name-pattern="$KAIGI_E2E_FILTER"); fi
set +e
env KAIGI_URL="$URL" KAIGI_EXPECT_TRANSPORT="$MODE" KAIGI_E2E_MODE="$MODE" \
  KAIGI_E2E_OUT="$OUT" KAIGI_E2E_ARTIFACTS="$ART" KAIGI_PID="$KPID" KAIGI_CLK_TCK="$(getconf CLK_TCK)" \
  KAIGI_MEDIA_PORT="$MEDIA_PORT" KAIGI_ADMIN_KEY="$ADMIN_KEY" \
  KAIGI_URL_B="${KPID_B:+https://127.0.0.1:$HTTP_PORT_B}" KAIGI_PID_B="$KPID_B" \
  node --test --test-reporter=spec "${FILTER[@]}" "$HERE/meeting.test.mjs"
status=$?
set -e

node "$HERE/http-get.mjs" "$URL/metrics" --out "$ART/metrics.txt" 2>/dev/null || true
if ! kill -0 "$KPID" 2>/dev/null; then
  say "kaigi exited during the test"
  status=1
fi

if [ -f "$OUT" ]; then
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const m = (r.tests && r.tests.meeting) || {};
    const f = m.joinToFirstFrameMs;
    if (f) console.log(`[e2e:${r.mode}] join -> first remote frame: p2 ${f.p2} ms, p3 ${f.p3} ms`);
    if (m.kaigiCpu) console.log(`[e2e:${r.mode}] kaigi CPU, 3 participants: ${m.kaigiCpu.percentOfOneCore}% of one core over ${m.kaigiCpu.windowSeconds} s`);
    if (m.leaveToTwoTilesMs != null) console.log(`[e2e:${r.mode}] leave -> 2 tiles: ${m.leaveToTwoTilesMs} ms`);
    const s = (r.tests && r.tests.simulcast) || {};
    if (s.downMs != null) console.log(`[e2e:${r.mode}] simulcast figures: down_ms=${s.downMs} up_ms=${s.upMs ?? "-"}`);
  ' "$OUT" || true
  say "results: $OUT"
fi

# The metrics after a whole run of meetings follow Prometheus's conventions (promtool, Debian's
# prometheus package; scripts/test.sh installs it).
if [ "$status" -eq 0 ] && [ -z "${KAIGI_E2E_FILTER:-}" ]; then
  if ! command -v promtool >/dev/null; then
    say "promtool is missing: apt-get install prometheus (scripts/test.sh does)"
    status=1
  elif ! promtool check metrics <"$ART/metrics.txt" >"$ART/promtool.txt" 2>&1; then
    say "promtool check metrics found problems:"
    cat "$ART/promtool.txt" >&2
    status=1
  else
    say "metrics: promtool check metrics passed ($(grep -c '^# TYPE' "$ART/metrics.txt") families)"
  fi
fi

if [ "$status" -ne 0 ]; then
  server_log_tail 80
  say "FAILED (artifacts in $ART)"
fi
exit "$status"
