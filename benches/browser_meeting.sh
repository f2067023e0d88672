#!/usr/bin/env bash
# Measures a real 3-person browser meeting on this machine: time from clicking Join to the first
# remote video frame decoded, and kaigi's CPU while three Chromium participants meet.
#
#   sudo benches/browser_meeting.sh [RUNS]      (default 5 runs; needs what scripts/test.sh installs)
#
# Each run is tests/e2e/run.sh udp (private network namespace, loopback only). Writes
# benches/results/browser-meeting-<date>.json and .md with every run and the medians.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${1:-5}
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
cargo build --quiet --release -p kaigi
DAY=$(date -u +%Y-%m-%d)
OUT="$ROOT/benches/results/browser-meeting-$DAY"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for i in $(seq "$RUNS"); do
  echo "run $i/$RUNS"
  KAIGI_E2E_OUT="$TMP/run-$i.json" KAIGI_E2E_ARTIFACTS="$TMP/art-$i" bash tests/e2e/run.sh udp >"$TMP/log-$i" 2>&1 ||
    { tail -n 30 "$TMP/log-$i"; echo "run $i failed" >&2; exit 1; }
done
MACHINE="$(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/ {print $2}') GiB"
node - "$TMP" "$RUNS" "$OUT" "$MACHINE" "$(git rev-parse --short HEAD)" <<'JS'
const fs = require('fs');
const [dir, runs, out, machine, commit] = process.argv.slice(2);
const rows = [];
for (let i = 1; i <= Number(runs); i++) {
  const m = JSON.parse(fs.readFileSync(`${dir}/run-${i}.json`, 'utf8')).tests.meeting;
  rows.push({ run: i, join_to_first_frame_ms: [m.joinToFirstFrameMs.p2, m.joinToFirstFrameMs.p3],
              kaigi_cpu_percent_of_one_core: m.kaigiCpu.percentOfOneCore, leave_to_two_tiles_ms: m.leaveToTwoTilesMs });
}
const median = a => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const joins = rows.flatMap(r => r.join_to_first_frame_ms);
const summary = {
  date: new Date().toISOString(), commit, machine,
  scenario: '3 headless Chromium participants (Chromium's fake camera and microphone), one room, loopback in a private network namespace',
  join_to_first_frame_ms: { median: median(joins), min: Math.min(...joins), max: Math.max(...joins), samples: joins.length },
  kaigi_cpu_percent_of_one_core: { median: median(rows.map(r => r.kaigi_cpu_percent_of_one_core)),
                                   max: Math.max(...rows.map(r => r.kaigi_cpu_percent_of_one_core)) },
  runs: rows,
};
fs.writeFileSync(`${out}.json`, JSON.stringify(summary, null, 2) + '\n');
const md = [`# Browser meeting, ${summary.date.slice(0, 10)} (commit ${commit})`, '', `Machine: ${machine}.`, '',
  `Scenario: ${summary.scenario}. Command: \`sudo benches/browser_meeting.sh ${runs}\`.`, '',
  '| figure | median | range |', '|---|---|---|',
  `| Join click → first remote frame decoded | ${summary.join_to_first_frame_ms.median} ms | ${summary.join_to_first_frame_ms.min}–${summary.join_to_first_frame_ms.max} ms (${joins.length} joins) |`,
  `| kaigi CPU with 3 participants | ${summary.kaigi_cpu_percent_of_one_core.median}% of one core | max ${summary.kaigi_cpu_percent_of_one_core.max}% |`, ''].join('\n');
fs.writeFileSync(`${out}.md`, md);
console.log(md);
JS
