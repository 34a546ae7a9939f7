#!/usr/bin/env bash
# Build the Splunk app tarball dist/abusedweb-<version>.tar.gz (called by `make package`).
#
# One top folder abusedweb/: default/*.conf, the files under app/ and bin/, the
# statically linked x86_64 Linux program in linux_x86_64/bin/, and licences/
# with the licence texts of every crate compiled into it. The bytes depend only
# on the commit: sorted names, owner 0:0, every mtime = SOURCE_DATE_EPOCH (default:
# the last commit's time), gzip -n, and build paths remapped out of the binary.
#
# Needs: a rustup Rust toolchain, python3, git, GNU tar, gzip.
# Environment: OUT_DIR (default dist/), SOURCE_DATE_EPOCH, CARGO_TARGET_DIR.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
APP=abusedweb
TARGET=x86_64-unknown-linux-musl
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

# --- the binary ----------------------------------------------------------------
rustup target add "$TARGET" >/dev/null 2>&1 ||
    rustup target add "$TARGET" || die "rustup target add $TARGET failed"
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
# musl's default is a static PIE: no loader, no libc needed on the host.
# --remap-path-prefix keeps the checkout and cargo paths out of panic messages.
RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$ROOT=/build/abusedweb --remap-path-prefix=$CARGO_HOME_DIR=/cargo" \
    cargo build --release --locked --target "$TARGET" --bin "$APP"
BINARY=$TARGET_DIR/$TARGET/release/$APP

python3 - "$BINARY" <<'PY' || die "$BINARY is not a static x86-64 ELF"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a 64-bit little-endian ELF"
e_type, e_machine = struct.unpack_from("<HH", data, 16)
assert e_machine == 62, f"e_machine {e_machine}, want 62 (x86-64)"
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
for leak in "$ROOT" "$CARGO_HOME_DIR" "${HOME:-/}"; do
    [[ $leak == / ]] && continue
    if grep -qF -- "$leak" "$BINARY"; then die "$BINARY contains the build path $leak"; fi
done
# A process that gets EOF before any chunk must exit 0 and write nothing
# (docs/behaviour.md 3): proves the binary starts on this host.
smoke=$("$BINARY" </dev/null) || die "$BINARY exited $? on empty input, want 0"
[[ -z $smoke ]] || die "$BINARY wrote output on empty input"

# --- stage ---------------------------------------------------------------------
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/abusedweb-package.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
A=$STAGE/$APP
mkdir -p "$A/default" "$A/bin" "$A/linux_x86_64/bin"

# AppInspect rejects dot-files and local/ anywhere; refuse them at the source.
bad=$(find default app bin \( -name '.*' -o -name local -o -name '*.py[co]' \) -print)
[[ -z $bad ]] || die "not shippable (dot-file, local/ or compiled Python): $bad"

cp default/*.conf "$A/default/"
cp -R app/. "$A/"
cp -R bin/. "$A/bin/"
cp "$BINARY" "$A/linux_x86_64/bin/$APP"

cargo metadata --format-version 1 --locked --filter-platform "$TARGET" >"$STAGE/metadata.json"
python3 scripts/licenses.py "$STAGE/metadata.json" "$(rustc --print sysroot)" "$A/licenses"
rm "$STAGE/metadata.json"

# 0755 directories, 0644 files; only the program is executable (AppInspect:
# exec bits are allowed under bin/ folders only).
find "$A" -type d -exec chmod 0755 {} +
find "$A" -type f -exec chmod 0644 {} +
chmod 0755 "$A/linux_x86_64/bin/$APP"

# --- tarball -------------------------------------------------------------------
mkdir -p "$OUT_DIR"
TARBALL=$OUT_DIR/$APP-$VERSION.tar.gz
tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@$SOURCE_DATE_EPOCH" -C "$STAGE" -cf - "$APP" | gzip -9n >"$TARBALL.tmp"
mv "$TARBALL.tmp" "$TARBALL"
echo "package.sh: wrote $TARBALL ($(sha256sum "$TARBALL" | cut -c1-16)…, $(stat -c %s "$TARBALL") bytes)"
