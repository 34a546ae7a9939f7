#!/usr/bin/env bash
# Run a Windows program under Wine, the way the tests start windows_x86_64/bin/abusedweb.exe.
#
# Usage: scripts/wine.sh PROGRAM.exe [ARG...]  (stdin, stdout, stderr and the exit
# status are the program's). The Wine prefix is the project's own,
# target/wine (WINEPREFIX overrides); it is created on first use, under a lock so
# that tests starting many programs at once create it once. Wine's own messages
# are silenced (WINEDEBUG=-all) and it is told not to offer Mono or Gecko, which
# a console program does not need, so that stderr carries only the program's.
# Wine itself (Debian's wine64) is installed by scripts/package.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WINEPREFIX=${WINEPREFIX:-$ROOT/target/wine}
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
WINE=$(command -v wine64 || command -v wine || echo /usr/lib/wine/wine64)
[[ -x $WINE ]] || { echo "wine.sh: no wine64 (Debian: apt-get install wine64)" >&2; exit 127; }

if [[ ! -f $WINEPREFIX/system.reg ]]; then
    mkdir -p "$(dirname "$WINEPREFIX")"
    (
        flock 9
        if [[ ! -f $WINEPREFIX/system.reg ]]; then
            "$WINE" wineboot --init >/dev/null 2>&1 || true
            # wineboot returns before the registry is written; wait for it.
            WINESERVER=$(command -v wineserver64 || command -v wineserver || echo /usr/lib/wine/wineserver64)
            "$WINESERVER" -w 2>/dev/null || true
        fi
        [[ -f $WINEPREFIX/system.reg ]] || { echo "wine.sh: could not create the Wine prefix $WINEPREFIX" >&2; exit 1; }
    ) 9>"$WINEPREFIX.lock"
fi
exec "$WINE" "$@"
