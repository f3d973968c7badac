#!/bin/bash
# Fetches the real cAdvisor 0.38.7 (the build Debian bullseye ships) into target/cadvisor, once,
# and prints the binary's path on stdout. Idempotent and safe to run concurrently (a lock guards
# the download). Used by tests/tests/vs_cadvisor.rs and benches/compare/run.sh.
#
# The package is downloaded with apt-get from the Debian mirror this machine's own apt sources
# name, through a private list directory with bullseye as its only suite, and unpacked with
# dpkg-deb: nothing is installed and the system's apt lists are not touched. Needs root the first
# time only (apt-get's lock).
# Usage: scripts/get-cadvisor.sh            (CARGO_TARGET_DIR is honoured)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "scripts/get-cadvisor.sh: ERROR: $*" >&2; exit 1; }

dest="${CARGO_TARGET_DIR:-$repo/target}/cadvisor"
bin="$dest/usr/bin/cadvisor"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

mkdir -p "$dest"
exec 9>"$dest.lock"
flock -w 600 9 || die "timed out waiting for another download into $dest"
if [ ! -x "$bin" ]; then
    # Debian's own mirror: debian.sources (deb822, Debian 12's default) first, then any other
    # source file; in the one-line format the URL is the first field with a scheme (an option
    # such as [signed-by=...] may come before it).
    url='{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; exit}}'
    mirror=$(awk "/^URIs:/ $url" /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk "/^URIs:.*\/debian\/?\$/ $url" || true)
    [ -n "$mirror" ] || mirror=$(awk "/^deb .*\/debian\/? / $url" /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || die "no Debian mirror named in /etc/apt/sources.list{,.d/*.sources}"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/lists/partial"
    echo "deb $mirror bullseye main" >"$tmp/sources.list"
    opts=(-o Dir::Etc::sourcelist="$tmp/sources.list" -o Dir::Etc::sourceparts=-
          -o Dir::State::Lists="$tmp/lists" -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3
          -o APT::Sandbox::User=root)
    apt-get "${opts[@]}" update >/dev/null \
        || die "apt-get update from $mirror bullseye failed (mirror unreachable?)"
    (cd "$tmp" && apt-get "${opts[@]}" download cadvisor >/dev/null) \
        || die "apt-get download cadvisor (bullseye) from $mirror failed"
    deb=$(ls "$tmp"/cadvisor_*.deb 2>/dev/null | head -n1)
    [ -n "$deb" ] || die "no cadvisor .deb after the download"
    dpkg-deb -x "$deb" "$dest" || die "dpkg-deb -x $deb failed"
fi
[ -x "$bin" ] || die "$bin missing after the download"
"$bin" --version >/dev/null 2>&1 || die "$bin does not run"
echo "$bin"
