#!/usr/bin/env bash
# Build the Splunk app tarballs (called by `make package`):
#
#   dist/abusedweb-<version>.tar.gz         the app for Splunk Cloud and for Linux
#                                           search heads with aarch64 (or no) indexers
#   dist/abusedweb-<version>-onprem.tar.gz  the same app plus the Windows program, with
#                                           every program replicated to indexers
#
# One top folder abusedweb/ in each: default/*.conf, the files under app/ and bin/,
# and the programs, statically linked, built from this source:
#   linux_x86_64/bin/abusedweb          x86_64-unknown-linux-musl
#   bin/abusedweb                       aarch64-unknown-linux-musl (splunkd's fallback
#                                       folder, which a Linux aarch64 host reaches)
#   windows_x86_64/bin/abusedweb.exe    x86_64-pc-windows-gnu, on-prem tarball only
# plus lookups/abused_web_services.csv, the pattern lists, and licenses/ with the
# licence texts of everything compiled into the programs. lookups/README.txt stays
# in the source tree: AppInspect's check_lookups_allow_list fails any file in
# lookups/ that is not a CSV, and app/README.md, "Pattern lists", says the same.
# The on-prem tarball takes default-onprem/distsearch.conf (no deny list) in place
# of default/distsearch.conf (keeps the x86_64 program out of the knowledge bundle);
# app/README.md, "Platforms other than Linux x86-64", says why.
#
# The bytes depend only on the commit: sorted names, owner 0:0, every mtime =
# SOURCE_DATE_EPOCH (default: the last commit's time), gzip -n, build paths
# remapped out of the programs, no link time in the PE header.
#
# Needs: a rustup Rust toolchain, python3, git, GNU tar, gzip. Installs the Rust
# targets (rustup) and, from Debian, the mingw-w64 linker and, to smoke-test the
# cross-built programs here, qemu-user-static and wine64 (scripts/need_debs.sh).
# Environment: OUT_DIR (default dist/), SOURCE_DATE_EPOCH, CARGO_TARGET_DIR.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
APP=abusedweb
OUT_DIR=${OUT_DIR:-$ROOT/dist}

die() { echo "package.sh: $*" >&2; exit 1; }

# --- version and timestamp ---------------------------------------------------
META_NODEPS=$(cargo metadata --no-deps --format-version 1 --locked)
VERSION=$(python3 -c '
import json, sys
print([p for p in json.load(sys.stdin)["packages"] if p["name"] == "abusedweb"][0]["version"])' <<<"$META_NODEPS")
TARGET_DIR=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' <<<"$META_NODEPS")
[[ $VERSION =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] ||
    die "Cargo.toml version '$VERSION' is not MAJOR.MINOR.PATCH (Splunk wants plain semver)"

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
        die "not a git checkout: set SOURCE_DATE_EPOCH to fix the file times"
fi
export SOURCE_DATE_EPOCH

# The app's own version fields must say what Cargo.toml says (tests/app_conf.rs
# checks the same); fail here rather than ship a tarball that lies.
python3 - "$VERSION" <<'PY' || die "version fields out of step with Cargo.toml (see above)"
import json, re, sys
version = sys.argv[1]
major, minor, patch = map(int, version.split("."))
conf, stanza = {}, None
for line in open("default/app.conf"):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if line.startswith("["):
        stanza = line[1:-1]
        continue
    key, _, value = line.partition("=")
    conf[(stanza, key.strip())] = value.strip()
want = {
    ("id", "version"): version,
    ("launcher", "version"): version,
    ("install", "build"): str(major * 1000000 + minor * 1000 + patch),
}
manifest = json.load(open("app/app.manifest"))["info"]["id"]["version"]
bad = [f"default/app.conf [{s}] {k} = {conf.get((s, k))}, want {v}" for (s, k), v in want.items() if conf.get((s, k)) != v]
if manifest != version:
    bad.append(f"app/app.manifest info.id.version = {manifest}, want {version}")
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# --- the programs --------------------------------------------------------------
X86=x86_64-unknown-linux-musl
ARM=aarch64-unknown-linux-musl
WIN=x86_64-pc-windows-gnu
scripts/need_debs.sh gcc-mingw-w64-x86-64-posix qemu-user-static wine64 ||
    die "could not install the Debian packages the cross builds need"
installed_targets=$(rustup target list --installed)
for target in "$X86" "$ARM" "$WIN"; do
    grep -qxF "$target" <<<"$installed_targets" || rustup target add "$target" ||
        die "rustup target add $target failed"
done
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
# musl's default is a static executable (a static PIE on x86_64, a plain static
# executable on aarch64, as the target specs say): no loader, no libc needed on
# the host. --remap-path-prefix keeps the checkout and cargo paths out of panic
# messages. --no-default-features: the app's programs are the search command only,
# without the file front-end `abusedweb scan` (Cargo.toml, [features]).
REMAP="--remap-path-prefix=$ROOT=/build/abusedweb --remap-path-prefix=$CARGO_HOME_DIR=/cargo"
build() {
    local target=$1
    shift
    RUSTFLAGS="${RUSTFLAGS:-} $REMAP $*" cargo build --release --locked --no-default-features --target "$target" --bin "$APP"
}
build "$X86"
# The toolchain's own lld links the aarch64 musl target with the musl CRT objects
# and libc.a that rustup ships for it: no aarch64 C toolchain is needed.
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-rust-lld} \
    build "$ARM"
# Debian's mingw-w64 links the Windows program; without --no-insert-timestamp
# the PE header would carry the link time.
build "$WIN" -C link-arg=-Wl,--no-insert-timestamp
BIN_X86=$TARGET_DIR/$X86/release/$APP
BIN_ARM=$TARGET_DIR/$ARM/release/$APP
BIN_WIN=$TARGET_DIR/$WIN/release/$APP.exe

check_static_elf() {
    python3 - "$1" "$2" <<'PY' || die "$1 is not a static ELF for e_machine $2"
import struct, sys
data = open(sys.argv[1], "rb").read()
want = int(sys.argv[2])
assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a 64-bit little-endian ELF"
e_type, e_machine = struct.unpack_from("<HH", data, 16)
assert e_machine == want, f"e_machine {e_machine}, want {want}"
phoff, = struct.unpack_from("<Q", data, 32)
phentsize, phnum = struct.unpack_from("<HH", data, 54)
for i in range(phnum):
    p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
    assert p_type != 3, "has PT_INTERP: dynamically linked"
    if p_type == 2:  # PT_DYNAMIC: a static PIE has one, but must need no library
        for off in range(p_offset, p_offset + p_filesz, 16):
            tag, _ = struct.unpack_from("<qQ", data, off)
            assert tag != 1, "has DT_NEEDED: needs a shared library"
PY
}
check_static_elf "$BIN_X86" 62  # EM_X86_64
check_static_elf "$BIN_ARM" 183 # EM_AARCH64
python3 - "$BIN_WIN" <<'PY' || die "$BIN_WIN is not a reproducible x86-64 Windows console program"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:2] == b"MZ", "no MZ header"
pe, = struct.unpack_from("<I", data, 0x3C)
assert data[pe:pe + 4] == b"PE\0\0", "no PE signature"
machine, _, timestamp = struct.unpack_from("<HHI", data, pe + 4)
assert machine == 0x8664, f"machine {machine:#x}, want 0x8664 (x86-64)"
assert timestamp == 0, f"TimeDateStamp {timestamp}: the link time is in the header"
magic, = struct.unpack_from("<H", data, pe + 24)
assert magic == 0x20B, f"optional header magic {magic:#x}, want 0x20b (PE32+)"
subsystem, = struct.unpack_from("<H", data, pe + 24 + 68)
assert subsystem == 3, f"subsystem {subsystem}, want 3 (console)"
PY
# Windows' own DLLs only: a mingw runtime DLL (libwinpthread-1.dll,
# libgcc_s_seh-1.dll, ...) would not be on the host.
dlls=$(x86_64-w64-mingw32-objdump -p "$BIN_WIN" | sed -n 's/^[[:space:]]*DLL Name: //p')
[[ -n $dlls ]] || die "$BIN_WIN: no imported DLL found (objdump -p)"
if grep -qi '^lib' <<<"$dlls"; then die "$BIN_WIN needs a mingw runtime DLL: $(tr '\n' ' ' <<<"$dlls")"; fi
for binary in "$BIN_X86" "$BIN_ARM" "$BIN_WIN"; do
    for leak in "$ROOT" "$CARGO_HOME_DIR" "${HOME:-/}"; do
        [[ $leak == / ]] && continue
        if grep -qF -- "$leak" "$binary"; then die "$binary contains the build path $leak"; fi
    done
done
# A process that gets EOF before any chunk must exit 0 and write nothing
# (docs/behaviour.md 3): proves each program starts, natively or emulated.
smoke() {
    local out
    out=$("$@" </dev/null) || die "$* exited $? on empty input, want 0"
    [[ -z $out ]] || die "$* wrote output on empty input"
}
case $(uname -m) in
    x86_64) smoke "$BIN_X86"; smoke qemu-aarch64-static "$BIN_ARM" ;;
    aarch64) smoke qemu-x86_64-static "$BIN_X86"; smoke "$BIN_ARM" ;;
    *) smoke qemu-x86_64-static "$BIN_X86"; smoke qemu-aarch64-static "$BIN_ARM" ;;
esac
smoke scripts/wine.sh "$BIN_WIN"

# --- stage and pack --------------------------------------------------------------
# AppInspect rejects dot-files and local/ anywhere; refuse them at the source.
bad=$(find default default-onprem app bin lookups \( -name '.*' -o -name local -o -name '*.py[co]' \) -print)
[[ -z $bad ]] || die "not shippable (dot-file, local/ or compiled Python): $bad"
# The shipped lookup only: never an admin's abused_web_services_local.csv, which
# a package must not carry (an upgrade would overwrite the admin's copy with it).
LOOKUP=lookups/abused_web_services.csv
[[ -f $LOOKUP ]] || die "$LOOKUP missing"

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/abusedweb-package.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
for target in "$X86" "$ARM" "$WIN"; do
    cargo metadata --format-version 1 --locked --no-default-features --filter-platform "$target" >"$STAGE/metadata-$target.json"
done
SYSROOT=$(rustc --print sysroot)
mkdir -p "$OUT_DIR"

# stage VARIANT: the app folder of one tarball, then the tarball.
stage() {
    local variant=$1 A=$STAGE/$1/$APP tarball
    local programs=("linux_x86_64/bin/$APP" "bin/$APP") metadata=("$STAGE/metadata-$X86.json" "$STAGE/metadata-$ARM.json")
    mkdir -p "$A/default" "$A/bin" "$A/linux_x86_64/bin" "$A/lookups"
    cp default/*.conf "$A/default/"
    cp "$LOOKUP" "$A/lookups/"
    cp -R app/. "$A/"
    cp -R bin/. "$A/bin/"
    cp "$BIN_X86" "$A/linux_x86_64/bin/$APP"
    cp "$BIN_ARM" "$A/bin/$APP"
    if [[ $variant == onprem ]]; then
        cp default-onprem/distsearch.conf "$A/default/distsearch.conf"
        mkdir -p "$A/windows_x86_64/bin"
        cp "$BIN_WIN" "$A/windows_x86_64/bin/$APP.exe"
        programs+=("windows_x86_64/bin/$APP.exe")
        metadata+=("$STAGE/metadata-$WIN.json")
    fi
    python3 scripts/licenses.py "$SYSROOT" "$A/licenses" "${programs[@]}" -- "${metadata[@]}"
    # 0755 directories, 0644 files; only the programs are executable (AppInspect:
    # exec bits are allowed under bin/ folders only).
    find "$A" -type d -exec chmod 0755 {} +
    find "$A" -type f -exec chmod 0644 {} +
    for p in "${programs[@]}"; do chmod 0755 "$A/$p"; done

    tarball=$OUT_DIR/$APP-$VERSION.tar.gz
    [[ $variant == main ]] || tarball=$OUT_DIR/$APP-$VERSION-$variant.tar.gz
    tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime="@$SOURCE_DATE_EPOCH" -C "$STAGE/$variant" -cf - "$APP" | gzip -9n >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    echo "package.sh: wrote $tarball ($(sha256sum "$tarball" | cut -c1-16)…, $(stat -c %s "$tarball") bytes)"
}
stage main
stage onprem
for b in "$BIN_X86" "$BIN_ARM" "$BIN_WIN"; do
    echo "package.sh: $(stat -c %s "$b") bytes in ${b#"$TARGET_DIR"/}"
done
