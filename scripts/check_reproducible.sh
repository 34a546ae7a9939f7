#!/usr/bin/env bash
# Package the same commit twice and require identical bytes, for both tarballs
# (dist/abusedweb-<version>.tar.gz and -onprem.tar.gz; called by `make test`).
#
# The second run changes what must not matter: the temp folder, the umask and the
# mtimes of the app's source files. Cheap by default: cargo reuses the binary, so
# this checks the staging and the tar/gzip step. REPRO_FULL=1 also rebuilds the
# three programs from scratch in another target folder (minutes, with LTO), which
# checks that the compiler and linker output does not depend on where or when it
# was built.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORK=$ROOT/target/repro
rm -rf "$WORK"
mkdir -p "$WORK/a" "$WORK/b" "$WORK/tmp"
# Pinned once: a commit landing between the two runs must not count as a difference.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH

OUT_DIR=$WORK/a scripts/package.sh >"$WORK/a.log" 2>&1 || { cat "$WORK/a.log" >&2; exit 1; }

# Not lookups/abused_web_services.csv: the programs embed it (include_str!), so a
# new mtime would make cargo rebuild all three; tar's --mtime covers it anyway.
touch default/*.conf default-onprem/*.conf bin/* app/LICENSE app/README.md app/app.manifest app/metadata/*
second_env=(OUT_DIR="$WORK/b" TMPDIR="$WORK/tmp")
if [[ ${REPRO_FULL:-} == 1 ]]; then
    second_env+=(CARGO_TARGET_DIR="$WORK/cargo-target")
fi
(umask 077 && env "${second_env[@]}" scripts/package.sh) >"$WORK/b.log" 2>&1 ||
    { cat "$WORK/b.log" >&2; exit 1; }

a=$(cd "$WORK/a" && sha256sum -- *.tar.gz)
b=$(cd "$WORK/b" && sha256sum -- *.tar.gz)
[[ $(wc -l <<<"$a") == 2 ]] || { echo "check_reproducible.sh: want 2 tarballs, got: $a" >&2; exit 1; }
if [[ $a != "$b" ]]; then
    echo "check_reproducible.sh: two packagings of the same commit differ:" >&2
    echo "$a" | sed 's/^/  a: /' >&2
    echo "$b" | sed 's/^/  b: /' >&2
    for t in "$WORK"/a/*.tar.gz; do
        diff <(tar -tvzf "$t") <(tar -tvzf "$WORK/b/$(basename "$t")") >&2 || true
    done
    exit 1
fi
echo "check_reproducible.sh: identical:"
echo "$a" | sed 's/^/  /'
