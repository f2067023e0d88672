#!/usr/bin/env bash
# Checks deploy/ without Docker: the Prometheus configuration, the compose file, Grafana's
# provisioning and the kaigi dashboard, and (given a metrics dump) that every metric the
# dashboard queries is one kaigi exports.
#
# Usage: tests/deploy/check.sh [METRICS_FILE]
#   METRICS_FILE  Prometheus text exposition from a running kaigi (curl -sk https://host:8443/metrics);
#                 tests/deploy/metrics-dump.sh makes one. A labelled family appears there only once
#                 it has a value (kaigi_joins_total after a join...): take the dump from a server
#                 that has seen traffic, as metrics-dump.sh does.
#
# Needs: promtool (Debian: prometheus), python3 with PyYAML (Debian: python3-yaml).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPLOY="$ROOT/deploy"
METRICS=${1:-}

die() { echo "tests/deploy/check.sh: $*" >&2; exit 1; }

command -v promtool >/dev/null || die "promtool is missing (apt-get install prometheus)"
# Debian's python3 (with python3-yaml) where a python3 earlier on PATH lacks PyYAML.
PY=python3
if ! python3 -c 'import yaml' 2>/dev/null && [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi
command -v "$PY" >/dev/null || die "python3 is missing (apt-get install python3)"
"$PY" -c 'import yaml' 2>/dev/null || die "PyYAML is missing (apt-get install python3-yaml)"
[ -z "$METRICS" ] || [ -r "$METRICS" ] || die "cannot read metrics file $METRICS"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# (a) The Prometheus configuration.
promtool check config "$DEPLOY/prometheus.yml" >"$TMP/promtool.log" 2>&1 ||
  { cat "$TMP/promtool.log" >&2; die "promtool check config deploy/prometheus.yml failed"; }

# (b) Structure of compose.yaml, the provisioning files and the dashboard; the dashboard's
# queries go into a rules file for promtool to parse. (c) Their metric names against the dump.
status=0
"$PY" - "$DEPLOY" "$TMP/queries.rules.yml" "$METRICS" >"$TMP/summary" <<'PY' || status=$?
import json
import os
import re
import sys

import yaml

deploy, rules_path, metrics_path = sys.argv[1], sys.argv[2], sys.argv[3]
errors = []


def load_yaml(rel):
    with open(os.path.join(deploy, rel), encoding="utf-8") as f:
        return yaml.safe_load(f)


# compose files: every service has an image or a build; bind-mounted files exist.
compose = load_yaml("compose.yaml")
services = compose.get("services") or {}
if not services:
    errors.append("compose.yaml: no services")
cluster = load_yaml("compose.cluster.yaml")
for name, svc in (cluster.get("services") or {}).items():
    if name.startswith("kaigi"):
        env = svc.get("environment") or {}
        for key in ("KAIGI_CLUSTER__REDIS_URL", "KAIGI_CLUSTER__NODE_ID", "KAIGI_CLUSTER__URL"):
            if key not in env:
                errors.append(f"compose.cluster.yaml: {name} lacks {key}")
    services = {**services, f"cluster/{name}": svc}
for name, svc in services.items():
    if not (svc.get("image") or svc.get("build")):
        errors.append(f"compose.yaml: service {name} has neither image nor build")
    build = svc.get("build")
    if isinstance(build, dict):
        ctx = os.path.join(deploy, build.get("context", "."))
        dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
        if not os.path.isfile(dockerfile):
            errors.append(f"compose.yaml: service {name}: no {os.path.relpath(dockerfile, deploy)}")
    for vol in svc.get("volumes") or []:
        src = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
        if src.startswith((".", "/")) and not os.path.exists(os.path.join(deploy, src)):
            errors.append(f"compose.yaml: service {name} mounts {src}, which does not exist")

# Grafana provisioning: the datasource the dashboard names, and a file provider.
ds = load_yaml("grafana/provisioning/datasources/prometheus.yaml")
uids = [d.get("uid") for d in ds.get("datasources") or []]
if "prometheus" not in uids:
    errors.append("datasources/prometheus.yaml: no datasource with uid prometheus")
prov = load_yaml("grafana/provisioning/dashboards/kaigi.yaml")
providers = prov.get("providers") or []
if not any(p.get("type") == "file" and (p.get("options") or {}).get("path") for p in providers):
    errors.append("dashboards/kaigi.yaml: no file provider with options.path")

# The dashboard: every panel queries the provisioned datasource and has a target.
with open(os.path.join(deploy, "grafana/dashboards/kaigi.json"), encoding="utf-8") as f:
    dash = json.load(f)
if dash.get("uid") != "kaigi":
    errors.append("kaigi.json: uid is not kaigi")


def all_panels(panels):
    for p in panels:
        if p.get("type") == "row":
            yield from all_panels(p.get("panels") or [])
        else:
            yield p


exprs = []
panels = list(all_panels(dash.get("panels") or []))
ids = [p.get("id") for p in panels]
if len(set(ids)) != len(ids):
    errors.append("kaigi.json: panel ids repeat")
for p in panels:
    title = p.get("title", f"panel {p.get('id')}")
    if (p.get("datasource") or {}).get("uid") != "prometheus":
        errors.append(f"kaigi.json: panel {title!r}: datasource uid is not prometheus")
    targets = [t for t in p.get("targets") or [] if t.get("expr")]
    if not targets:
        errors.append(f"kaigi.json: panel {title!r}: no target with an expression")
    for t in targets:
        if (t.get("datasource") or {"uid": "prometheus"}).get("uid") != "prometheus":
            errors.append(f"kaigi.json: panel {title!r} target {t.get('refId')}: datasource uid is not prometheus")
        exprs.append((title, t["expr"]))

# promtool parses the queries as recording rules.
with open(rules_path, "w", encoding="utf-8") as f:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}, f)
with open(rules_path + ".index", "w", encoding="utf-8") as f:
    for i, (title, e) in enumerate(exprs):
        f.write(f"dashboard:query_{i}\tpanel {title!r}: {e}\n")

# Metric names in PromQL: identifiers that are not functions, keywords, label names or strings.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "inf", "nan", "atan2"}


def metric_names(expr):
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', " ", expr)
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", s):
        if m.group(0).lower() in KEYWORDS or s[m.end():].lstrip().startswith("("):
            continue
        names.add(m.group(0))
    return names


def family(name, present):
    """The family a series name belongs to: itself, or a histogram's/summary's base name."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in present:
            return name[: -len(suffix)]
    if name in present:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


used = set()
for _, e in exprs:
    used |= metric_names(e)

summary = (f"compose.yaml ({len(services)} services), provisioning, dashboard {dash.get('uid')} "
           f"({len(panels)} panels, {len(exprs)} queries)")
missing = []
if metrics_path:
    with open(metrics_path, encoding="utf-8") as f:
        present = {line.split()[2] for line in f if line.startswith("# TYPE ") and len(line.split()) >= 4}
    bases = sorted({family(n, present) for n in used})
    missing = [b for b in bases if b not in present]
    summary += f"; {len(bases) - len(missing)}/{len(bases)} dashboard metrics in {metrics_path}"
    if missing:
        errors.append(f"metrics not in {metrics_path}: " + " ".join(missing))
else:
    summary += f"; {len(used)} metric names (no metrics file given, not compared)"

for e in errors:
    print("  " + e, file=sys.stderr)
print(summary)
sys.exit(1 if errors else 0)
PY
SUMMARY=$(cat "$TMP/summary")
PARSE="queries parse"
if [ ! -f "$TMP/queries.rules.yml" ]; then
  PARSE="queries not parsed"
  status=1
elif ! promtool check rules "$TMP/queries.rules.yml" >"$TMP/rules.log" 2>&1; then
  sed 's/^/  /' "$TMP/rules.log" >&2
  grep -o 'dashboard:query_[0-9]*' "$TMP/rules.log" | sort -u | while read -r rule; do
    grep -P "^$rule\t" "$TMP/queries.rules.yml.index" | cut -f2- | sed "s/^/  $rule is /" >&2
  done
  PARSE="a query does not parse (promtool check rules)"
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "deploy check: FAILED: prometheus.yml ok, ${SUMMARY:-python check crashed}, $PARSE" >&2
  exit 1
fi
echo "deploy check: ok: prometheus.yml, $SUMMARY, $PARSE"
