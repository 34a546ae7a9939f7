#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed yet.
#
# Used by package.sh (cross linkers and the emulators that smoke-test the
# cross-built programs) and cross_test.sh. Runs `apt-get update` once, only when
# something is missing. Needs root (CI runs as root) or sudo.
#
# Usage: scripts/need_debs.sh PACKAGE...
set -euo pipefail

missing=()
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

if ((EUID == 0)); then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "need_debs.sh: missing Debian packages ${missing[*]}; install them as root" >&2
    exit 1
fi
echo "need_debs.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
