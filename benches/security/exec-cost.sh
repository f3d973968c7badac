#!/usr/bin/env bash
# What the exec watch costs an exec: the CPU of its thread (`exec-watch`, from
# /proc/<pid>/task/<tid>/stat) over the execs it examined in the same window
# (collector_security_execs_examined_total), with N cgroups each starting a `sleep` every
# EVERY seconds, after a warm-up. Prints one line: execs, thread CPU, microseconds an exec.
#
#   benches/security/exec-cost.sh                  # N=100 EVERY=1 WINDOW=30 WARMUP=10
#   N=50 EVERY=0.5 WINDOW=60 benches/security/exec-cost.sh
#
# Needs root (cgroups under /sys/fs/cgroup/*, the process events connector). Builds the
# exporter in release mode first. Removes its cgroups and stops what it started (by pid) on any
# exit.
set -euo pipefail

N=${N:-100}
EVERY=${EVERY:-1}
WINDOW=${WINDOW:-30}
WARMUP=${WARMUP:-10}
CG=/sys/fs/cgroup
PARENT="ccol-execcost-$$"
here=$(cd "$(dirname "$0")/../.." && pwd)

die() { echo "exec-cost.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
command -v curl >/dev/null || die "needs curl (apt-get install curl)"

HIERS=()
for d in "$CG"/*/; do
    d=${d%/}
    # cpuset: a cgroup there takes no task until its cpus and mems are set; not needed here.
    [ "${d##*/}" = cpuset ] && continue
    [ -f "$d/cgroup.procs" ] && HIERS+=("${d##*/}")
done
[ -f "$CG/cgroup.procs" ] && HIERS=(".")
[ ${#HIERS[@]} -gt 0 ] || die "no cgroup hierarchy under $CG"

WL_PIDS=()
EXP_PID=""
cleanup() {
    set +e
    trap - EXIT INT TERM
    [ -n "$EXP_PID" ] && kill -TERM "$EXP_PID" 2>/dev/null && wait "$EXP_PID" 2>/dev/null
    [ ${#WL_PIDS[@]} -gt 0 ] && kill -KILL "${WL_PIDS[@]}" 2>/dev/null
    # Each workload's sleep outlives its killed shell: every task left in our cgroups.
    for h in "${HIERS[@]}"; do
        dir="$CG/$h/$PARENT"
        [ -d "$dir" ] || continue
        cat "$dir"/*/cgroup.procs 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    done
    wait 2>/dev/null
    for h in "${HIERS[@]}"; do
        dir="$CG/$h/$PARENT"
        [ -d "$dir" ] || continue
        for c in "$dir"/*/; do
            for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$c" 2>/dev/null && break; sleep 0.1; done
        done
        rmdir "$dir" 2>/dev/null || echo "exec-cost.sh: could not remove $dir" >&2
    done
}
trap cleanup EXIT INT TERM

(cd "$here" && cargo build --release -q -p collector-exporter)
BIN="${CARGO_TARGET_DIR:-$here/target}/release/collector-exporter"
[ -x "$BIN" ] || die "no $BIN"

for h in "${HIERS[@]}"; do mkdir "$CG/$h/$PARENT"; done
for i in $(seq "$N"); do
    for h in "${HIERS[@]}"; do mkdir "$CG/$h/$PARENT/c$i"; done
    (
        for h in "${HIERS[@]}"; do echo $BASHPID >"$CG/$h/$PARENT/c$i/cgroup.procs"; done
        exec sh -c "while :; do sleep $EVERY; done"
    ) &
    WL_PIDS+=($!)
    # Not a job of this shell any more: no "Killed" line for each when they are stopped.
    disown $!
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" --web.listen-address "127.0.0.1:$port" --housekeeping.interval 5s \
    --cgroups.include "/$PARENT" --runtime.docker-socket off --runtime.containerd-socket off \
    --runtime.crio-socket off --log.level warn &
EXP_PID=$!

examined() {
    curl -sf "http://127.0.0.1:$port/metrics" |
        awk '/^collector_security_execs_examined_total /{print $2}'
}
source_of() {
    curl -sf "http://127.0.0.1:$port/metrics" |
        awk -F'"' '/^collector_security_exec_source\{/{print $2}'
}
# utime + stime of the exec watch's thread, in clock ticks.
ticks() {
    local t
    for t in /proc/"$EXP_PID"/task/*; do
        if [ "$(cat "$t/comm" 2>/dev/null)" = "exec-watch" ]; then
            awk '{ sub(/.*\) /, ""); print $12 + $13 }' "$t/stat"
            return
        fi
    done
    die "no exec-watch thread in the exporter (pid $EXP_PID)"
}

sleep "$WARMUP"
src=$(source_of)
[ "$src" = "process_events" ] || die "exec source is '$src', not process_events"
e0=$(examined); t0=$(ticks)
sleep "$WINDOW"
e1=$(examined); t1=$(ticks)
hz=$(getconf CLK_TCK)
awk -v e0="$e0" -v e1="$e1" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v n="$N" -v every="$EVERY" -v w="$WINDOW" 'BEGIN {
    execs = e1 - e0; cpu = (t1 - t0) / hz
    if (execs <= 0) { print "exec-cost.sh: no exec examined in the window" > "/dev/stderr"; exit 1 }
    printf "%d cgroups, a sleep every %ss, %ds window: %d execs examined, exec-watch thread %.2f CPU s, %.0f us an exec\n",
        n, every, w, execs, cpu, cpu / execs * 1e6
}'
