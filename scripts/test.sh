#!/usr/bin/env bash
# kaigi's one test command: formatting, lints, unit tests, release build, end-to-end browser tests
# (UDP and ICE-TCP), load smoke, interop tests, the cluster over shaped WAN links and a short run of
# every fuzz target.
#
#   sudo ./scripts/test.sh        (or as root: ./scripts/test.sh)
#
# On a fresh Debian 12 machine with the Rust toolchain, python3 and node/npm it installs what it
# needs (Debian packages, npm packages for tests/e2e) the first time; later runs skip that.
# Stops at the first failing step. Honours CARGO_TARGET_DIR; CI=true makes the output compact.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh must run as root (network namespaces, firewall rules, apt): sudo ./scripts/test.sh" >&2
  exit 2
fi

CI_MODE=false
if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then CI_MODE=true; fi
if $CI_MODE; then
  export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never NO_COLOR=1
fi

# Under sudo, the invoking user's rustup toolchain may not be on root's PATH.
if ! command -v cargo >/dev/null 2>&1; then
  for home in "${HOME:-/root}" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)"; do
    if [ -n "$home" ] && [ -x "$home/.cargo/bin/cargo" ]; then
      export PATH="$home/.cargo/bin:$PATH"
      [ -n "${RUSTUP_HOME:-}" ] || [ ! -d "$home/.rustup" ] || export RUSTUP_HOME="$home/.rustup"
      [ -n "${CARGO_HOME:-}" ] || export CARGO_HOME="$home/.cargo"
      break
    fi
  done
fi

TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
export KAIGI_BIN="$TARGET/release/kaigi"
LOG_DIR="$TARGET/test-logs"
mkdir -p "$LOG_DIR"

Q=()
if $CI_MODE; then Q=(--quiet); fi

passed=0
started=$SECONDS

header() {
  echo
  echo "==== $* ===="
}

# step NAME COMMAND...: runs COMMAND with errexit on; stops everything on failure.
step() {
  local name=$1 t0=$SECONDS rc
  shift
  header "$name"
  set +e
  (
    set -e
    "$@"
  )
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    echo "---- FAILED: $name (exit $rc, $((SECONDS - t0)) s) ----"
    echo "$passed passed, 1 failed"
    exit "$rc"
  fi
  passed=$((passed + 1))
  echo "---- ok: $name ($((SECONDS - t0)) s) ----"
}

# --- setup: Debian packages and npm packages, installed only when missing -------------------------
APT_PACKAGES=(chromium chromium-driver libopus-dev pkg-config iptables iproute2 python3-venv ffmpeg
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice
  python3-gi gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 gir1.2-nice-0.1
  prometheus slapd openssl python3-yaml redis-server)

install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "Debian packages: all present"
    return 0
  fi
  echo "Debian packages: installing ${missing[*]}"
  local log="$LOG_DIR/apt.log"
  # Packages only, no services: prometheus (for promtool) would start a server otherwise.
  local policy=/usr/sbin/policy-rc.d made_policy=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=true
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1 || rc=$?
  if $made_policy; then rm -f "$policy"; fi
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log"
    echo "apt-get failed (full log: $log)" >&2
    return 1
  fi
}

install_npm() {
  local dir="$ROOT/tests/e2e" sum stamp
  sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  stamp="$dir/node_modules/.kaigi-lock-sha256"
  if [ -f "$dir/node_modules/playwright-core/package.json" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    echo "npm packages (tests/e2e): up to date"
    return 0
  fi
  echo "npm packages (tests/e2e): npm ci"
  local log="$LOG_DIR/npm.log"
  if ! (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "npm ci failed (full log: $log)" >&2
    return 1
  fi
  echo "$sum" >"$stamp"
}

setup() {
  local tool
  for tool in cargo node npm python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "missing $tool: install it first" >&2; return 1; }
  done
  install_apt
  install_npm
  # The interop test runs without network; its virtualenv is made here, from PyPI.
  bash "$ROOT/tests/interop/run.sh" --setup
  install_cargo_fuzz
}

# cargo-fuzz (crates.io) drives libFuzzer over fuzz/'s targets.
install_cargo_fuzz() {
  if command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz: present"
    return 0
  fi
  echo "cargo-fuzz: cargo install cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz >"$LOG_DIR/cargo-fuzz.log" 2>&1 ||
    { tail -n 30 "$LOG_DIR/cargo-fuzz.log"; return 1; }
}

# Every fuzz target for KAIGI_FUZZ_SECS (15) seconds, from its seeds and the regression inputs
# kept in fuzz/seeds/<target>; new corpus entries go under the target folder, not the tree.
# cargo fuzz needs nightly-only flags (sanitizers); the one stable toolchain allows them with
# RUSTC_BOOTSTRAP=1, for this build only.
fuzz_all() {
  local secs=${KAIGI_FUZZ_SECS:-15} t corpus
  # Its own target folder: sanitizer builds share nothing with the others.
  local dir="$TARGET/fuzz"
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -O --target-dir "$dir")
  for t in $(cd fuzz && cargo fuzz list); do
    corpus="$TARGET/fuzz-corpus/$t"
    mkdir -p "$corpus"
    local log="$LOG_DIR/fuzz-$t.log"
    if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O --target-dir "$dir" "$t" "$corpus" "seeds/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=1024) >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz target $t failed (log: $log; the input is under fuzz/artifacts/$t)" >&2
      return 1
    fi
    echo "fuzz: $t: $(grep -E '^Done' "$log" | tail -1)"
  done
}

header "setup"
set +e
(
  set -e
  setup
)
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  echo "---- FAILED: setup (exit $rc) ----"
  echo "0 passed, 1 failed"
  exit "$rc"
fi

# --- the suites ---------------------------------------------------------------------------------
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy "${Q[@]}" --workspace --all-targets -- -D warnings
step "cargo test" cargo test "${Q[@]}" --workspace
step "cargo build --release (server and load generator)" cargo build "${Q[@]}" --release -p kaigi -p kaigi-bench
step "deploy files: compose, Prometheus, Grafana dashboard against a live server's metrics" \
  bash -c 'tests/deploy/metrics-dump.sh "$1" && tests/deploy/check.sh "$1"' _ "$LOG_DIR/deploy-metrics.txt"
step "e2e: 3 browsers over UDP" bash tests/e2e/run.sh udp
step "e2e: 3 browsers over ICE-TCP (UDP blocked)" bash tests/e2e/run.sh tcp

step "load smoke: 20 viewers of real rtc peers (private network namespace)" bash tests/load/run.sh 20
step "interop: aiortc, FFmpeg, GStreamer, recordings (private network namespace)" \
  unshare -n bash -c 'ip link set lo up; exec bash tests/interop/run.sh'
step "cluster: a broadcast relayed to branch offices over shaped links, an edge killed, Redis stopped (own network namespaces)" \
  bash tests/cluster/wan.sh
step "fuzz: every parser kaigi owns, ${KAIGI_FUZZ_SECS:-15} s each" fuzz_all

echo
echo "all steps passed in $((SECONDS - started)) s"
echo "$passed passed, 0 failed"
