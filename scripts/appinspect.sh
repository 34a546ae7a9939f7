#!/usr/bin/env bash
# Vet dist/abusedweb-<version>.tar.gz with Splunk AppInspect the way Splunk Cloud
# vetting does (called by `make appinspect`, after `make package`).
#
# Passes only with zero failures, zero warnings and zero errors. The full report
# is written to target/appinspect.json. AppInspect lives in .venv/ (created here,
# reused afterwards); it needs PyPI once and the system's libmagic.
set -euo pipefail
export LC_ALL=C.UTF-8

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
APPINSPECT_VERSION=4.3.1
VENV=$ROOT/.venv
REPORT=$ROOT/target/appinspect.json

die() { echo "appinspect.sh: $*" >&2; exit 1; }

VERSION=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
print([p for p in json.load(sys.stdin)["packages"] if p["name"] == "abusedweb"][0]["version"])')
TARBALL=${1:-dist/abusedweb-$VERSION.tar.gz}
[[ -f $TARBALL ]] || die "$TARBALL not found: run \`make package\` first"

if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
if [[ $("$VENV/bin/python" -m pip show splunk-appinspect 2>/dev/null | sed -n 's/^Version: //p') != "$APPINSPECT_VERSION" ]]; then
    echo "appinspect.sh: installing splunk-appinspect==$APPINSPECT_VERSION into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "splunk-appinspect==$APPINSPECT_VERSION"
fi

mkdir -p "$(dirname "$REPORT")"
rm -f "$REPORT"
# --ci makes the exit code reflect failures (101) and warnings (103); the JSON
# summary below is what decides, so the exit code is only reported.
set +e
"$VENV/bin/splunk-appinspect" inspect "$TARBALL" \
    --mode precert --included-tags cloud \
    --skip-trusted-libraries-update --ci \
    --data-format json --output-file "$REPORT" >"$ROOT/target/appinspect.log" 2>&1
rc=$?
set -e
[[ -s $REPORT ]] || { cat "$ROOT/target/appinspect.log" >&2; die "no report written (exit $rc)"; }

"$VENV/bin/python" - "$REPORT" "$rc" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
summary = report["summary"]
print("appinspect: " + ", ".join(f"{k} {summary.get(k, 0)}" for k in
      ("failure", "warning", "error", "future_failure", "skipped", "not_applicable", "success")))
for app in report["reports"]:
    for group in app["groups"]:
        for check in group["checks"]:
            if check["result"] in ("success", "not_applicable"):
                continue
            print(f"  {check['result'].upper()} {check['name']}")
            for m in check.get("messages", []):
                where = m.get("message_filename") or ""
                print(f"      - {m.get('message', '').strip()} {where}".rstrip())
bad = sum(summary.get(k, 0) for k in ("failure", "warning", "error"))
if bad:
    print(f"appinspect: NOT clean (splunk-appinspect exit {sys.argv[2]}); report: {sys.argv[1]}")
sys.exit(1 if bad else 0)
PY
