#!/usr/bin/env bash
# Run the tests that drive the program only over pipes (protocol, distributed
# map/reduce, parity) against the cross-built release programs (called by
# `make cross-test`, part of `make test`, after `make package` built them):
#
#   aarch64-unknown-linux-musl/release/abusedweb   tests/protocol.rs, distributed.rs and
#       parity.rs, under qemu-aarch64-static (user-mode emulation; natively on an
#       aarch64 host); and the library's codec and prefilter unit tests built for
#       aarch64 (the skimmer's NEON code)
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

# gcc-aarch64-linux-gnu and its headers: only for the aarch64 unit tests, whose
# dev-dependencies (criterion's `alloca`) compile a little C.
scripts/need_debs.sh qemu-user-static wine64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
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
# The skimmer's SIMD code is per architecture: its unit tests (NEON's classes
# against the byte-at-a-time ones, the proptests against the tokeniser) and
# the prefilter's run compiled for aarch64 too.
echo "cross_test.sh: aarch64 unit tests: cargo test --target aarch64-unknown-linux-musl --lib codec:: engine::prefilter" | tee -a "$LOG"
start=$SECONDS
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-rust-lld} \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=${arm_runner:-env} \
    CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc} \
    cargo test --locked --release --no-default-features --target aarch64-unknown-linux-musl --lib -- \
    codec:: engine::prefilter 2>&1 | tee -a "$LOG"
echo "cross_test.sh: aarch64 unit tests: $((SECONDS - start)) s" | tee -a "$LOG"
scripts/wine.sh --start-server
trap 'scripts/wine.sh --stop-server' EXIT
cross_run windows "$TARGET_DIR/x86_64-pc-windows-gnu/release/abusedweb.exe" "$ROOT/scripts/wine.sh" \
    --test protocol --test distributed --test parity
