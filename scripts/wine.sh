#!/usr/bin/env bash
# Run a Windows program under Wine, the way the tests start windows_x86_64/bin/abusedweb.exe.
#
#   scripts/wine.sh PROGRAM.exe [ARG...]   stdin, stdout, stderr and the exit status
#                                          are the program's
#   scripts/wine.sh --start-server         start a persistent wineserver, with Wine's
#                                          own services already up (cross_test.sh)
#   scripts/wine.sh --stop-server          stop it, and every Wine process of the prefix
#
# The Wine prefix is the project's own, target/wine (WINEPREFIX overrides); it is
# created on first use, under a lock so that tests starting many programs at once
# create it once. Wine's own messages are silenced (WINEDEBUG=-all) and it is told
# not to offer Mono or Gecko, which a console program does not need.
# Many programs started at once while wineserver itself starts (it exits 3 s after
# its last client) sometimes fail (exit 1, no output: measured here on one or two
# of the 106 protocol tests in most runs); a persistent, warmed-up server removes that, and makes each start faster.
# Wine itself (Debian's wine64) is installed by scripts/package.sh.
# Every Wine process runs with address-space randomisation off (`setarch -R`): with
# it on, about one start in a thousand fails before the program runs, with exit 1
# and nothing on stdout ("err:virtual:virtual_alloc_first_teb wine: failed to map
# the shared user data: c0000018", seen with WINEDEBUG=err+all when a randomised
# mapping takes the address Wine needs); measured here as one failed parity run in
# three without it and none in five with it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WINEPREFIX=${WINEPREFIX:-$ROOT/target/wine}
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
WINE=$(command -v wine64 || command -v wine || echo /usr/lib/wine/wine64)
WINESERVER=$(command -v wineserver64 || command -v wineserver || echo /usr/lib/wine/wineserver64)
[[ -x $WINE && -x $WINESERVER ]] || { echo "wine.sh: no wine64 (Debian: apt-get install wine64)" >&2; exit 127; }

if [[ ! -f $WINEPREFIX/system.reg ]]; then
    mkdir -p "$(dirname "$WINEPREFIX")"
    (
        flock 9
        if [[ ! -f $WINEPREFIX/system.reg ]]; then
            setarch "$(uname -m)" -R "$WINE" wineboot --init >/dev/null 2>&1 || true
            # wineboot returns before the registry is written; wait for it.
            "$WINESERVER" -w 2>/dev/null || true
        fi
        [[ -f $WINEPREFIX/system.reg ]] || { echo "wine.sh: could not create the Wine prefix $WINEPREFIX" >&2; exit 1; }
    ) 9>"$WINEPREFIX.lock"
fi

case ${1:-} in
    --start-server)
        "$WINESERVER" -k >/dev/null 2>&1 || true
        "$WINESERVER" -p
        setarch "$(uname -m)" -R "$WINE" cmd /c exit >/dev/null 2>&1
        exit 0
        ;;
    --stop-server)
        "$WINESERVER" -k >/dev/null 2>&1 || true
        exit 0
        ;;
esac
exec setarch "$(uname -m)" -R "$WINE" "$@"
