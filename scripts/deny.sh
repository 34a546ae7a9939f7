#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy: deny.toml), run by `make test`.
#
# * licences, bans and sources need no network and always run: any failure
#   fails the script;
# * advisories need the RustSec database, a git repository on GitHub. When it
#   cannot be fetched (this workplace reaches crates.io but not GitHub) and no
#   copy is already on the machine, the advisory check is skipped with a clear
#   line instead of failing, as SECURITY.md says. With a database present
#   (fetched now, or left by an earlier run), vulnerable or yanked crates fail.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    cargo install cargo-deny --locked
fi

cargo deny --log-level error check licenses bans sources

db_root=${CARGO_HOME:-$HOME/.cargo}/advisory-dbs
if timeout 120 cargo deny --log-level error fetch db >/dev/null 2>&1; then
    cargo deny --log-level error check advisories
    echo "deny: advisories checked against a freshly fetched RustSec database"
elif compgen -G "$db_root/*/crates" >/dev/null; then
    cargo deny --log-level error check --disable-fetch advisories
    echo "deny: advisories checked against the RustSec database already in $db_root (could not refresh it)"
else
    echo "deny: SKIPPED the advisory check: the RustSec advisory database could not be fetched" \
        "(no access to github.com from here) and no copy exists in $db_root;" \
        "licences, bans and sources were checked"
fi
