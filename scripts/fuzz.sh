#!/usr/bin/env bash
# Fuzz every cargo-fuzz target in fuzz/ (libFuzzer, nightly).
#
#   scripts/fuzz.sh smoke [target...]   ~20 s per target (make fuzz-smoke, in make test)
#   scripts/fuzz.sh long  [target...]   ~10 min per target (make fuzz)
#
# FUZZ_SECONDS overrides the time per target, FUZZ_SANITIZER the sanitizer
# (address by default; `none` is about twice as fast).
# Seeds: the real splunkd captures in ../shared/fixtures/scp2-recordings/ are
# split per target into fuzz/corpus/<target>/ (git-ignored; the corpus grows
# across runs), next to the committed hand-written seeds in fuzz/seeds/<target>/.
# Any crash, panic, timeout or out-of-memory fails the script and prints the
# artifact path; turn each into a regression test in tests/hostile.rs with the
# input under tests/data/regressions/.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-smoke}
shift || true
case "$mode" in
    smoke) seconds=${FUZZ_SECONDS:-20} ;;
    long) seconds=${FUZZ_SECONDS:-600} ;;
    *)
        echo "usage: $0 smoke|long [target...]" >&2
        exit 2
        ;;
esac
sanitizer=${FUZZ_SANITIZER:-address}
all_targets=(chunk_reader metadata csv_body options request_stream scan_record scan_file)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

# Tools: nightly (libFuzzer needs -Zsanitizer flags) and cargo-fuzz.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

recordings=../shared/fixtures/scp2-recordings
if [ -d "$recordings" ]; then
    python3 scripts/fuzz_seed.py "$recordings" fuzz/corpus
else
    echo "fuzz: $recordings not found; fuzzing from fuzz/seeds only"
fi
# scan_file: the shared real Sysmon exports (EVTX, JSON, XmlWinEventLog) as
# whole-file seeds, copied into the (ignored) corpus, not into the repository.
events=../shared/fixtures/sysmon-events
if [ -d "$events" ]; then
    mkdir -p fuzz/corpus/scan_file
    find "$events" -type f -size -256k \( -name '*.evtx' -o -name '*.json' -o -name '*.log' \) \
        -exec cp {} fuzz/corpus/scan_file/ \;
    chmod u+w fuzz/corpus/scan_file/*
fi

cd fuzz
cargo +nightly fuzz build --sanitizer "$sanitizer"
mkdir -p artifacts/logs
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="artifacts/logs/$t.log"
    echo "fuzz: $t for ${seconds}s (log fuzz/$log)"
    # -timeout: one input taking longer than 10 s is a hang; -rss_limit_mb
    # (and, under ASan, the same malloc limit) catches allocations of
    # declared rather than received sizes.
    if cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -dict=scp2.dict \
        -print_final_stats=1 >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[^ ]*' "$log" | tail -1)
        echo "fuzz: $t ok: ${execs:-?} runs, ${cov:-no coverage line}"
    else
        failed+=("$t")
        echo "fuzz: $t FAILED; last lines of fuzz/$log:" >&2
        tail -n 40 "$log" >&2
        grep -h 'Test unit written to' "$log" | sed 's|.*Test unit written to |fuzz: crash input: |' >&2 || true
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) ran ${seconds}s without a finding"
