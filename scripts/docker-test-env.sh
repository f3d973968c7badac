#!/bin/bash
# A private dockerd for tests, in a directory of its own: its own data root, exec root, pidfile
# and socket under DIR, and no network set-up on the host (`--bridge=none`, no iptables, no IP
# masquerading), so it neither touches nor meets the host's own Docker. Idempotent: `start` on
# a directory whose dockerd already answers just prints its socket again.
#
# Usage:
#   scripts/docker-test-env.sh start DIR         start (or find) dockerd; prints unix://DIR/docker.sock
#   scripts/docker-test-env.sh image DIR [NAME]  import a busybox-static image (default ccol-bb:1); prints NAME
#   scripts/docker-test-env.sh pid DIR           prints dockerd's pid (exit 1 when not running)
#   scripts/docker-test-env.sh stop DIR          removes its containers, stops dockerd by its pid,
#                                                unmounts what it left under DIR (DIR itself stays)
#
# DIR should be short (a unix socket path is limited to 107 bytes). Containers must be run with
# `--network none`. Needs root, docker.io and busybox-static (scripts/test.sh installs them).
# With DOCKER_TEST_TMPFS=<size> (e.g. 2g) at `start`, the data root is a tmpfs of that size
# (layers with many files are made and removed fast, and never touch the disk); `stop` unmounts it.
set -euo pipefail

die() { echo "docker-test-env.sh: ERROR: $*" >&2; exit 1; }

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start|image|pid|stop DIR [NAME]"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock="unix://$dir/docker.sock"
pidfile="$dir/dockerd.pid"

running_pid() {
    [ -s "$pidfile" ] || return 1
    local p
    p=$(cat "$pidfile")
    [ -d "/proc/$p" ] && grep -qa dockerd "/proc/$p/cmdline" 2>/dev/null || return 1
    echo "$p"
}

answers() { docker -H "$sock" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "$cmd" in
start)
    command -v dockerd >/dev/null || die "dockerd not found; install docker.io (scripts/test.sh does)"
    command -v docker >/dev/null || die "docker client not found; install docker.io (scripts/test.sh does)"
    [ "$(id -u)" -eq 0 ] || die "dockerd needs root"
    if ! running_pid >/dev/null; then
        rm -f "$pidfile" "$dir/docker.sock"
        mkdir -p "$dir/data" "$dir/exec"
        driver=()
        if [ -n "${DOCKER_TEST_TMPFS:-}" ]; then
            if ! mountpoint -q "$dir/data"; then
                mount -t tmpfs -o "size=$DOCKER_TEST_TMPFS,nr_inodes=0,mode=0711" ccol-docker-data "$dir/data" \
                    || die "cannot mount a tmpfs on $dir/data"
            fi
            driver=(--storage-driver overlay2)
        fi
        # setsid: the daemon must not die with the shell that started it, nor get its signals.
        setsid dockerd \
            --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
            --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$pidfile" "${driver[@]}" \
            -H "$sock" >"$dir/dockerd.log" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 300); do
        if answers; then
            echo "$sock"
            exit 0
        fi
        sleep 0.1
    done
    tail -20 "$dir/dockerd.log" >&2 || true
    die "dockerd in $dir did not answer within 30 s"
    ;;
image)
    name=${3:-ccol-bb:1}
    answers || die "no dockerd answers on $sock; run '$0 start $dir' first"
    if ! docker -H "$sock" image inspect "$name" >/dev/null 2>&1; then
        # busybox-static's binary: it must run in an image with no libraries at all.
        bb=/bin/busybox
        [ -x "$bb" ] && ! ldd "$bb" >/dev/null 2>&1 \
            || die "a static $bb is needed; install busybox-static (scripts/test.sh does)"
        rootfs="$dir/bb-rootfs"
        rm -rf "$rootfs"
        mkdir -p "$rootfs"/{bin,proc,sys,dev,etc,tmp}
        cp "$bb" "$rootfs/bin/busybox"
        for a in sh sleep cat dd ls rm mkdir touch sync du df head seq find true; do
            ln -sf busybox "$rootfs/bin/$a"
        done
        tar -C "$rootfs" -cf "$dir/bb.tar" .
        docker -H "$sock" import -c 'CMD ["/bin/sh"]' "$dir/bb.tar" "$name" >/dev/null
        rm -rf "$rootfs" "$dir/bb.tar"
    fi
    echo "$name"
    ;;
pid)
    running_pid || exit 1
    ;;
stop)
    if p=$(running_pid); then
        if answers; then
            ids=$(docker -H "$sock" ps -aq || true)
            [ -z "$ids" ] || docker -H "$sock" rm -f $ids >/dev/null 2>&1 || true
        fi
        kill -TERM "$p" 2>/dev/null || true
        for _ in $(seq 1 200); do
            [ -d "/proc/$p" ] || break
            sleep 0.1
        done
        if [ -d "/proc/$p" ]; then
            kill -KILL "$p" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    # Its containerd shims and mounts, should any be left (a killed dockerd leaves them).
    for f in /proc/[0-9]*/cmdline; do
        p=${f#/proc/}
        p=${p%/cmdline}
        [ "$p" != "$$" ] || continue
        c=$({ tr '\0' ' ' <"$f"; } 2>/dev/null || true)
        case "$c" in
        containerd*"$dir/exec"*) kill -KILL "$p" 2>/dev/null || true ;;
        esac
    done
    awk -v d="$dir/" '{ if (index($5, d) == 1) print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do
            umount -l "$(printf '%b' "${m//\\/\\0}")" 2>/dev/null || true
        done
    rm -f "$pidfile" "$dir/docker.sock"
    ;;
*)
    die "unknown command $cmd (start|image|pid|stop)"
    ;;
esac
