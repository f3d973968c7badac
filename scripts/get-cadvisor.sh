#!/bin/bash
# Fetches the real cAdvisor 0.38.7 (Debian bullseye's build) into target/cadvisor, once, and
# prints the binary's path on stdout. Idempotent and safe to run concurrently (a lock guards the
# download). Used by tests/tests/vs_cadvisor.rs and benches/compare/run.sh.
#
# It calls ../shared/tools/get-cadvisor relative to the repository (CI keeps a read-only copy of
# shared/ beside the clone). Needs root (apt-get download into a private list directory) the first
# time only.
# Usage: scripts/get-cadvisor.sh            (CARGO_TARGET_DIR is honoured)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "scripts/get-cadvisor.sh: ERROR: $*" >&2; exit 1; }

dest="${CARGO_TARGET_DIR:-$repo/target}/cadvisor"
bin="$dest/usr/bin/cadvisor"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

tool="$repo/../shared/tools/get-cadvisor"
[ -x "$tool" ] || die "$tool not found: a copy of shared/ must sit beside the clone"
mkdir -p "$dest"
exec 9>"$dest.lock"
flock -w 600 9 || die "timed out waiting for another download into $dest"
if [ ! -x "$bin" ]; then
    # The tool prints the binary's path last; its chatter (apt warnings, version) goes to stderr.
    "$tool" "$dest" >/dev/null || die "$tool $dest failed (no Debian mirror reachable?)"
fi
[ -x "$bin" ] || die "$bin missing after the download"
"$bin" --version >/dev/null 2>&1 || die "$bin does not run"
echo "$bin"
