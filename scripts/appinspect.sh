#!/usr/bin/env bash
# Vet the app tarballs with Splunk AppInspect the way Splunk Cloud vetting does
# (called by `make appinspect`, after `make package`).
#
#   scripts/appinspect.sh [TARBALL]            the Splunk Cloud package (default
#       dist/abusedweb-<version>.tar.gz): passes only with zero failures, zero
#       warnings and zero errors.
#   scripts/appinspect.sh --onprem [TARBALL]   the on-premises package (default
#       dist/abusedweb-<version>-onprem.tar.gz), which is not meant for Splunk
#       Cloud: the same run, reported in full, passing when the only findings are
#       the two app/README.md ("Splunk Cloud vetting") explains:
#         WARNING check_that_app_contains_any_windows_specific_components
#                 on windows_x86_64/bin/abusedweb.exe (the Windows program), and
#         FAILURE check_idx_binary_compatibility on linux_x86_64/bin/abusedweb
#                 only (the x86_64 program is replicated to indexers on purpose;
#                 AppInspect 4.3.1 with libmagic 5.44 does not inspect a static
#                 PIE, so this one shows only with another libmagic).
#
# The full report is written to target/appinspect.json (target/appinspect-onprem.json).
# AppInspect lives in .venv/ (created here, reused afterwards); it needs PyPI once
# and the system's libmagic.
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
ONPREM=0
if [[ ${1:-} == --onprem ]]; then
    ONPREM=1
    shift
    REPORT=$ROOT/target/appinspect-onprem.json
    TARBALL=${1:-dist/abusedweb-$VERSION-onprem.tar.gz}
else
    TARBALL=${1:-dist/abusedweb-$VERSION.tar.gz}
fi
LOG=${REPORT%.json}.log
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
    --data-format json --output-file "$REPORT" >"$LOG" 2>&1
rc=$?
set -e
[[ -s $REPORT ]] || { cat "$LOG" >&2; die "no report written (exit $rc)"; }

"$VENV/bin/python" - "$REPORT" "$rc" "$ONPREM" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
onprem = sys.argv[3] == "1"
# On-prem package: (check, result) -> the only files that finding may name.
EXPLAINED = {
    ("check_that_app_contains_any_windows_specific_components", "warning"): {"windows_x86_64/bin/abusedweb.exe"},
    ("check_idx_binary_compatibility", "failure"): {"linux_x86_64/bin/abusedweb"},
} if onprem else {}
summary = report["summary"]
print(("appinspect (on-prem package): " if onprem else "appinspect: ") + ", ".join(
    f"{k} {summary.get(k, 0)}" for k in
    ("failure", "warning", "error", "future_failure", "skipped", "not_applicable", "success")))
bad = 0
for app in report["reports"]:
    for group in app["groups"]:
        for check in group["checks"]:
            result = check["result"]
            if result in ("success", "not_applicable"):
                continue
            messages = check.get("messages", [])
            files = {(m.get("message_filename") or "").strip() for m in messages}
            allowed = EXPLAINED.get((check["name"], result))
            explained = allowed is not None and bool(messages) and files <= allowed
            if not explained and result in ("failure", "warning", "error"):
                bad += 1
            print(f"  {result.upper()} {check['name']}" + (" (explained in app/README.md)" if explained else ""))
            for m in messages:
                where = m.get("message_filename") or ""
                print(f"      - {m.get('message', '').strip()} {where}".rstrip())
if bad:
    print(f"appinspect: NOT clean: {bad} unexplained finding(s) (splunk-appinspect exit {sys.argv[2]}); report: {sys.argv[1]}")
sys.exit(1 if bad else 0)
PY
