#!/bin/bash
# Private container runtimes for tests, each with its state, pidfile and socket in a directory
# of its own: Docker (through scripts/docker-test-env.sh), standalone containerd (its own root,
# state and sockets, the CRI plugin disabled) and Podman's Docker-compatible API service
# (`podman system service`, its storage under DIR). No bridge network anywhere: containers are run
# with `--network none` (Docker, Podman) or without a network (ctr). Idempotent: `*-start` on a
# directory whose daemon already answers just prints its socket again; `*-stop` stops only the
# daemon whose pid its own pidfile names, and what that daemon left under DIR.
#
# Usage:
#   scripts/runtime-test-env.sh install               apt-get what is missing (docker.io,
#                                                     containerd, runc, podman, busybox-static)
#   scripts/runtime-test-env.sh rootfs DIR            a busybox-static rootfs tar; prints DIR/bb.tar
#   scripts/runtime-test-env.sh docker-start DIR      = docker-test-env.sh start DIR
#   scripts/runtime-test-env.sh docker-image DIR [N]  = docker-test-env.sh image DIR [N]
#   scripts/runtime-test-env.sh docker-stop DIR       = docker-test-env.sh stop DIR
#   scripts/runtime-test-env.sh containerd-start DIR  containerd (no CRI plugin); prints its socket
#   scripts/runtime-test-env.sh containerd-image DIR NS [REF]
#                                                     imports a busybox image (docker-save format,
#                                                     made here) into namespace NS; prints REF
#   scripts/runtime-test-env.sh ctr DIR ARGS...       ctr against DIR's containerd
#   scripts/runtime-test-env.sh containerd-stop DIR   kills its tasks, removes its containers,
#                                                     stops containerd, unmounts under DIR
#   scripts/runtime-test-env.sh podman-start DIR      `podman system service` on DIR/podman.sock
#                                                     (storage under DIR); prints its socket
#   scripts/runtime-test-env.sh podman DIR ARGS...    podman with DIR's storage
#   scripts/runtime-test-env.sh podman-image DIR [N]  imports a busybox image; prints N
#   scripts/runtime-test-env.sh podman-stop DIR       removes its containers, stops the service
#
# Podman 4.3 on this kind of host works only with /etc/containers/containers.conf holding
# the settings below; `podman-start` writes that file when it is absent (and says so), and
# leaves an existing one alone.
#
# DIR should be short: a unix socket path is limited to 107 bytes. Needs root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
die() { echo "runtime-test-env.sh: ERROR: $*" >&2; exit 1; }
note() { echo "runtime-test-env.sh: $*" >&2; }

cmd=${1:-}
[ -n "$cmd" ] || die "usage: $0 COMMAND [DIR ...] (see the header of this script)"
shift

absdir() {
    [ -n "${1:-}" ] || die "$cmd needs a directory"
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# Is the process in pidfile $1 alive and running a command that contains $2?
pid_of() {
    local f=$1 what=$2 p
    [ -s "$f" ] || return 1
    p=$(cat "$f")
    [ -d "/proc/$p" ] && grep -qa -- "$what" "/proc/$p/cmdline" 2>/dev/null || return 1
    echo "$p"
}

# Stops pid $1: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do
        [ -d "/proc/$p" ] || return 0
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    sleep 0.3
}

# Kills processes whose command line contains $1 (shims, conmon left by a daemon of DIR).
kill_matching() {
    local pat=$1 f p c
    for f in /proc/[0-9]*/cmdline; do
        p=${f#/proc/}
        p=${p%/cmdline}
        [ "$p" != "$$" ] || continue
        c=$({ tr '\0' ' ' <"$f"; } 2>/dev/null || true)
        case "$c" in
        *"$pat"*) kill -KILL "$p" 2>/dev/null || true ;;
        esac
    done
}

# Unmounts everything mounted under directory $1.
unmount_under() {
    awk -v d="$1/" '{ if (index($5, d) == 1) print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do
            umount -l "$(printf '%b' "${m//\\/\\0}")" 2>/dev/null || true
        done
}

need_root() { [ "$(id -u)" -eq 0 ] || die "$cmd needs root"; }

static_busybox() {
    local bb=/bin/busybox
    [ -x "$bb" ] && ! ldd "$bb" >/dev/null 2>&1 \
        || die "a static $bb is needed; install busybox-static (scripts/test.sh does)"
    echo "$bb"
}

# A busybox rootfs tar at $1/bb.tar (also kept unpacked at $1/bb-rootfs).
make_rootfs() {
    local d=$1 bb
    bb=$(static_busybox)
    if [ ! -s "$d/bb.tar" ]; then
        rm -rf "$d/bb-rootfs"
        mkdir -p "$d/bb-rootfs"/{bin,proc,sys,dev,etc,tmp}
        cp "$bb" "$d/bb-rootfs/bin/busybox"
        for a in sh sleep cat dd ls rm mkdir touch sync head seq true; do
            ln -sf busybox "$d/bb-rootfs/bin/$a"
        done
        tar -C "$d/bb-rootfs" -cf "$d/bb.tar.tmp" .
        mv "$d/bb.tar.tmp" "$d/bb.tar"
    fi
    echo "$d/bb.tar"
}

case "$cmd" in
install)
    need_root
    need=()
    command -v dockerd >/dev/null || need+=(docker.io)
    command -v containerd >/dev/null && command -v ctr >/dev/null || need+=(containerd)
    command -v runc >/dev/null || need+=(runc)
    command -v podman >/dev/null || need+=(podman)
    { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
    if [ ${#need[@]} -gt 0 ]; then
        APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
        note "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2 \
            || { "${APT[@]}" update -qq >&2 && DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2; } \
            || die "apt-get install ${need[*]} failed"
    fi
    ;;
rootfs)
    make_rootfs "$(absdir "${1:-}")"
    ;;
docker-start | docker-image | docker-stop | docker-pid)
    exec "$here/docker-test-env.sh" "${cmd#docker-}" "$@"
    ;;
containerd-start)
    need_root
    d=$(absdir "${1:-}")
    command -v containerd >/dev/null && command -v ctr >/dev/null \
        || die "containerd/ctr not found; install containerd (scripts/test.sh does)"
    sock="$d/containerd.sock"
    if ! pid_of "$d/containerd.pid" "$d/containerd.toml" >/dev/null; then
        rm -f "$sock"
        mkdir -p "$d/root" "$d/state"
        cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
        setsid containerd --config "$d/containerd.toml" >"$d/containerd.log" 2>&1 </dev/null &
        echo $! >"$d/containerd.pid"
    fi
    for _ in $(seq 1 100); do
        if ctr -a "$sock" version >/dev/null 2>&1; then
            echo "$sock"
            exit 0
        fi
        sleep 0.1
    done
    tail -20 "$d/containerd.log" >&2 || true
    die "containerd in $d did not answer within 10 s"
    ;;
containerd-image)
    d=$(absdir "${1:-}")
    ns=${2:-}
    [ -n "$ns" ] || die "containerd-image DIR NS [REF]"
    ref=${3:-docker.io/library/ccol-bb:1}
    sock="$d/containerd.sock"
    if ! ctr -a "$sock" -n "$ns" images ls -q 2>/dev/null | grep -qxF "$ref"; then
        layer=$(make_rootfs "$d")
        img="$d/img"
        rm -rf "$img"
        mkdir -p "$img"
        lsum=$(sha256sum "$layer" | cut -d' ' -f1)
        mkdir -p "$img/$lsum"
        cp "$layer" "$img/$lsum/layer.tar"
        printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
            "$lsum" >"$img/config.json"
        csum=$(sha256sum "$img/config.json" | cut -d' ' -f1)
        mv "$img/config.json" "$img/$csum.json"
        printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
            "$csum" "$ref" "$lsum" >"$img/manifest.json"
        tar -C "$img" -cf "$d/img.tar" .
        ctr -a "$sock" -n "$ns" images import "$d/img.tar" >/dev/null
        rm -rf "$img" "$d/img.tar"
    fi
    echo "$ref"
    ;;
ctr)
    d=$(absdir "${1:-}")
    shift
    exec ctr -a "$d/containerd.sock" "$@"
    ;;
containerd-stop)
    d=$(absdir "${1:-}")
    sock="$d/containerd.sock"
    if p=$(pid_of "$d/containerd.pid" "$d/containerd.toml"); then
        for ns in $(ctr -a "$sock" namespaces ls -q 2>/dev/null || true); do
            c=(ctr -a "$sock" -n "$ns")
            for t in $("${c[@]}" tasks ls -q 2>/dev/null || true); do
                "${c[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
            done
            for t in $("${c[@]}" tasks ls -q 2>/dev/null || true); do
                for _ in $(seq 1 50); do
                    "${c[@]}" tasks rm -f "$t" >/dev/null 2>&1 && break
                    sleep 0.1
                done
            done
            for k in $("${c[@]}" containers ls -q 2>/dev/null || true); do
                "${c[@]}" containers rm "$k" >/dev/null 2>&1 || true
            done
        done
        stop_pid "$p"
    fi
    # Shims started for this containerd carry its socket in their command line.
    kill_matching "$sock"
    unmount_under "$d"
    rm -f "$d/containerd.pid" "$sock" "$sock.ttrpc"
    ;;
podman-start)
    need_root
    d=$(absdir "${1:-}")
    command -v podman >/dev/null || die "podman not found; install podman (scripts/test.sh does)"
    conf=/etc/containers/containers.conf
    if [ ! -e "$conf" ]; then
        mkdir -p /etc/containers
        cat >"$conf" <<'EOF'
# Written by scripts/runtime-test-env.sh (podman 4.3 on a cgroup v1 hybrid host without
# systemd as PID 1 and with a nofile limit root cannot raise).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
        note "wrote $conf (it was absent): cgroupfs manager, file events logger, ulimits"
    fi
    sock="$d/podman.sock"
    if ! pid_of "$d/podman.pid" "$sock" >/dev/null; then
        rm -f "$sock"
        mkdir -p "$d/storage" "$d/run" "$d/tmp"
        setsid podman --root "$d/storage" --runroot "$d/run" --tmpdir "$d/tmp" \
            system service --time=0 "unix://$sock" >"$d/podman.log" 2>&1 </dev/null &
        echo $! >"$d/podman.pid"
    fi
    for _ in $(seq 1 150); do
        if [ -S "$sock" ] && curl -sf --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
            echo "$sock"
            exit 0
        fi
        sleep 0.1
    done
    tail -20 "$d/podman.log" >&2 || true
    die "podman system service in $d did not answer within 15 s"
    ;;
podman)
    d=$(absdir "${1:-}")
    shift
    exec podman --root "$d/storage" --runroot "$d/run" --tmpdir "$d/tmp" "$@"
    ;;
podman-image)
    d=$(absdir "${1:-}")
    name=${2:-localhost/ccol-bb:1}
    p=(podman --root "$d/storage" --runroot "$d/run" --tmpdir "$d/tmp")
    if ! "${p[@]}" image exists "$name" 2>/dev/null; then
        tar=$(make_rootfs "$d")
        "${p[@]}" import -c 'CMD ["/bin/sh"]' "$tar" "$name" >/dev/null
    fi
    echo "$name"
    ;;
podman-stop)
    d=$(absdir "${1:-}")
    p=(podman --root "$d/storage" --runroot "$d/run" --tmpdir "$d/tmp")
    if [ -d "$d/storage" ]; then
        "${p[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    fi
    if pid=$(pid_of "$d/podman.pid" "$d/podman.sock"); then
        stop_pid "$pid"
    fi
    # conmon and any helper started for this storage carry DIR in their command line.
    kill_matching "$d/run"
    kill_matching "$d/storage"
    unmount_under "$d"
    rm -f "$d/podman.pid" "$d/podman.sock"
    ;;
*)
    die "unknown command $cmd (see the header of $0)"
    ;;
esac
