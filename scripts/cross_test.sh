#!/usr/bin/env bash
# Run the tests that drive the program only over pipes (protocol, distributed
# map/reduce, parity) against the cross-built release programs (called by
# `make cross-test`, part of `make test`, after `make package` built them):
#
#   aarch64-unknown-linux-musl/release/abusedweb   tests/protocol.rs, distributed.rs and
#       parity.rs, under qemu-aarch64-static (user-mode emulation; natively on an
#       aarch64 host)
#   x86_64-pc-windows-gnu/release/abusedweb.exe    the same, under Wine (scripts/wine.sh,
#       with a persistent wineserver for the run)
#
# tests/common starts `$ABUSEDWEB_TEST_RUNNER $ABUSEDWEB_TEST_BIN` in place of the
# cargo-built program, so the emulator is named explicitly: binfmt_misc is not
# needed (containers often lack it). The cargo output is appended to
# target/unit-tests.log, whose `test result:` lines `make test` adds up.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOG=$ROOT/target/unit-tests.log

die() { echo "cross_test.sh: $*" >&2; exit 1; }

scripts/need_debs.sh qemu-user-static wine64
TARGET_DIR=$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p "$(dirname "$LOG")"

# cross_run LABEL PROGRAM RUNNER CARGO-TEST-ARGS...
cross_run() {
    local label=$1 program=$2 runner=$3
    shift 3
    [[ -x $program ]] || die "$program not built: run \`make package\` first"
    echo "cross_test.sh: $label: ABUSEDWEB_TEST_BIN=$program ABUSEDWEB_TEST_RUNNER=$runner cargo test $*" | tee -a "$LOG"
    local start=$SECONDS
    ABUSEDWEB_TEST_BIN=$program ABUSEDWEB_TEST_RUNNER=$runner \
        cargo test --locked "$@" 2>&1 | tee -a "$LOG"
    echo "cross_test.sh: $label: $((SECONDS - start)) s" | tee -a "$LOG"
}

set -o pipefail
arm_runner=qemu-aarch64-static
[[ $(uname -m) == aarch64 ]] && arm_runner=
cross_run aarch64 "$TARGET_DIR/aarch64-unknown-linux-musl/release/abusedweb" "$arm_runner" \
    --test protocol --test distributed --test parity
scripts/wine.sh --start-server
trap 'scripts/wine.sh --stop-server' EXIT
cross_run windows "$TARGET_DIR/x86_64-pc-windows-gnu/release/abusedweb.exe" "$ROOT/scripts/wine.sh" \
    --test protocol --test distributed --test parity
