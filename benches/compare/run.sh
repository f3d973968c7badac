#!/bin/bash
# Whole-process comparison of cAdvisor 0.38.7 and collector-exporter on the same cgroups.
#
# For each N in $COUNTS it makes N container-like cgroups (in every v1 hierarchy and in cgroup2),
# each holding one process in its own network namespace (`unshare -n`); every tenth burns CPU
# under a CFS quota. Then, for each interval in $INTERVALS and each tool in $TOOLS, one after the
# other over the same cgroups: start the tool, wait until it serves every container, then for
# $DURATION seconds scrape /metrics every $SCRAPE_EVERY seconds (uncompressed unless GZIP=1) and
# record the tool's CPU seconds (utime+stime deltas of /proc/<pid>/stat over the window), its
# peak and final resident memory (VmHWM, VmRSS), the median and worst scrape latency, the body
# size and the number of series. Results: a table on stdout and in $OUT/results.{tsv,md}.
#
# Usage (as root): benches/compare/run.sh
#   COUNTS="100 1000 5000" INTERVALS="1 10" DURATION=60 SCRAPE_EVERY=10 \
#   TOOLS="cadvisor exporter cadvisor-strict" benches/compare/run.sh
# Tools: cadvisor         cAdvisor with its defaults (dynamic housekeeping: an idle container's
#                         interval doubles, up to 60 s, while its figures do not change)
#        cadvisor-strict  cAdvisor reading every container every interval, as the exporter does
#                         (-allow_dynamic_housekeeping=false)
#        exporter         target/release/collector-exporter (built here unless $EXPORTER is set)
#        exporter-b       a second exporter binary, $EXPORTER_B (another commit, for before and
#                         after on the same workload), or the same one with $EXPORTER_B_ARGS
#                         (a setting on and off)
# Other knobs: BURN_QUOTA_US/BURN_PERIOD_US (default 1000/1000000: 0.1% of a core per burner),
# PROCS (processes in each sleeping cgroup, default 1), EXECS_EVERY (seconds; when set, every
# tenth cgroup, offset from the burners, runs a shell that starts a `sleep` that often: exec
# activity for the security signals),
# CADVISOR (a binary; default: scripts/get-cadvisor.sh), OUT (default target/compare/<time>),
# EXPORTER_ARGS (more exporter flags, e.g. --housekeeping.hold-files), CADVISOR_ARGS (more
# cAdvisor flags, e.g. -disable_metrics=... to turn its process, tcp and udp groups on), GZIP=1 (scrape as
# Prometheus does, with `Accept-Encoding: gzip`; body bytes are then the compressed size, and the
# latency includes curl's decompressing).
#
# Everything it made is removed on exit, Ctrl-C included: tools and workload killed by pid, the
# cgroups removed; the namespaces, made by `unshare -n`, go with their processes.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "benches/compare/run.sh: ERROR: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "run as root: it creates cgroups and network namespaces"

COUNTS=${COUNTS:-"100 1000"}
INTERVALS=${INTERVALS:-"1 10"}
DURATION=${DURATION:-60}
SCRAPE_EVERY=${SCRAPE_EVERY:-10}
TOOLS=${TOOLS:-"cadvisor exporter"}
READY_TIMEOUT=${READY_TIMEOUT:-300}
BURN_QUOTA_US=${BURN_QUOTA_US:-1000}
BURN_PERIOD_US=${BURN_PERIOD_US:-1000000}
PROCS=${PROCS:-1}
EXECS_EVERY=${EXECS_EVERY:-}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
OUT=${OUT:-$target_dir/compare/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/logs"

for t in curl unshare xargs awk; do command -v "$t" >/dev/null || die "$t is missing"; done

# ---- what is cleaned up on exit --------------------------------------------------------------
CG=/sys/fs/cgroup
PARENT="ccol-cmp-$$"
HIERS=()         # every cgroup hierarchy mounted under /sys/fs/cgroup (v1 ones and cgroup2)
NAMES=""         # the current cgroup names under $PARENT
WL_PIDS=()       # workload processes
TOOL_PID=""      # the tool being measured
NAP_PID=""       # a pause in progress

# A pause that a signal cuts short: bash runs a trap only between commands, and `wait` returns
# at once when a trapped signal arrives, where a foreground `sleep` would finish first.
nap() {
    sleep "$1" &
    NAP_PID=$!
    wait "$NAP_PID" || true
    NAP_PID=""
}

for d in "$CG"/*/; do
    d=${d%/}
    [ -f "$d/cgroup.procs" ] && HIERS+=("${d##*/}")
done
[ ${#HIERS[@]} -gt 0 ] || die "no cgroup hierarchy under $CG"

stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

remove_cgroups() {
    local h dir c
    for h in "${HIERS[@]}"; do
        dir="$CG/$h/$PARENT"
        [ -d "$dir" ] || continue
        if [ -n "$NAMES" ]; then
            (cd "$dir" && echo "$NAMES" | xargs rmdir 2>/dev/null) || true
            # A killed task can take a moment to leave its cgroup.
            for c in $NAMES; do
                [ -d "$dir/$c" ] || continue
                for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$dir/$c" 2>/dev/null && break; sleep 0.1; done
            done
        fi
        rmdir "$dir" 2>/dev/null || echo "benches/compare/run.sh: could not remove $dir" >&2
    done
}

kill_workload() {
    [ ${#WL_PIDS[@]} -gt 0 ] || return 0
    kill -KILL "${WL_PIDS[@]}" 2>/dev/null || true
    wait "${WL_PIDS[@]}" 2>/dev/null || true
    WL_PIDS=()
    # The workload's other processes (PROCS > 1: sleepers its shells started, which outlive
    # them): every pid left in our cgroups, which hold nothing else.
    if [ -d "$CG/memory/$PARENT" ]; then
        cat "$CG/memory/$PARENT"/*/cgroup.procs 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    fi
}

cleanup() {
    set +e
    trap - EXIT INT TERM
    [ -n "$NAP_PID" ] && kill "$NAP_PID" 2>/dev/null && wait "$NAP_PID" 2>/dev/null
    [ -n "$TOOL_PID" ] && stop_pid "$TOOL_PID"
    TOOL_PID=""
    kill_workload
    remove_cgroups
    NAMES=""
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- the tools ----------------------------------------------------------------------------------
CADVISOR=${CADVISOR:-$("$repo/scripts/get-cadvisor.sh")} || die "cAdvisor cannot be had"
if [ -z "${EXPORTER:-}" ]; then
    log "building the release exporter"
    (cd "$repo" && cargo build --release -p collector-exporter >&2) || die "cargo build failed"
    EXPORTER="$target_dir/release/collector-exporter"
fi
[ -x "$EXPORTER" ] || die "$EXPORTER is not executable"
# A private copy: a rebuild during the run must not change what is measured.
cp "$EXPORTER" "$OUT/collector-exporter"
EXPORTER="$OUT/collector-exporter"
if [ -n "${EXPORTER_B:-}" ]; then
    [ -x "$EXPORTER_B" ] || die "$EXPORTER_B is not executable"
    cp "$EXPORTER_B" "$OUT/collector-exporter-b"
    EXPORTER_B="$OUT/collector-exporter-b"
fi
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$repo" log -1 --format=%h 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "cadvisor: $("$CADVISOR" --version 2>&1 | head -n1)"
    echo "kernel: $(uname -r); cpus: $(nproc); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "counts: $COUNTS; intervals: $INTERVALS; window: ${DURATION}s; scrape every ${SCRAPE_EVERY}s; tools: $TOOLS; gzip: ${GZIP:-0}"
    [ -n "${EXPORTER_B:-}" ] && echo "exporter-b: $EXPORTER_B"
    [ -n "${EXPORTER_ARGS:-}" ] && echo "exporter args: $EXPORTER_ARGS"
    [ -n "${EXPORTER_B_ARGS:-}" ] && echo "exporter-b args: $EXPORTER_B_ARGS"
    [ -n "${CADVISOR_ARGS:-}" ] && echo "cadvisor args: $CADVISOR_ARGS"
    echo "burners: every tenth cgroup, quota ${BURN_QUOTA_US}us per ${BURN_PERIOD_US}us"
    echo "processes per sleeping cgroup: $PROCS"
    if [ -n "$EXECS_EVERY" ]; then
        echo "exec loops: every tenth cgroup starts a sleep every ${EXECS_EVERY}s"
    fi
} | tee "$OUT/machine.txt" >&2

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- the workload -------------------------------------------------------------------------------
make_workload() { # N
    local n=$1 h c i=0 cpus mems
    NAMES=$(seq -f 'c%05g' 1 "$n")
    for h in "${HIERS[@]}"; do mkdir "$CG/$h/$PARENT"; done
    read -r cpus <"$CG/cpuset/cpuset.cpus" || true
    read -r mems <"$CG/cpuset/cpuset.mems" || true
    if [ -d "$CG/cpuset/$PARENT" ]; then
        echo "$cpus" >"$CG/cpuset/$PARENT/cpuset.cpus"
        echo "$mems" >"$CG/cpuset/$PARENT/cpuset.mems"
    fi
    for h in "${HIERS[@]}"; do (cd "$CG/$h/$PARENT" && echo "$NAMES" | xargs mkdir); done
    for c in $NAMES; do
        if [ -d "$CG/cpuset/$PARENT/$c" ]; then
            echo "$cpus" >"$CG/cpuset/$PARENT/$c/cpuset.cpus"
            echo "$mems" >"$CG/cpuset/$PARENT/$c/cpuset.mems"
        fi
        i=$((i + 1))
        if [ $((i % 10)) -eq 0 ]; then
            echo "$BURN_PERIOD_US" >"$CG/cpu/$PARENT/$c/cpu.cfs_period_us"
            echo "$BURN_QUOTA_US" >"$CG/cpu/$PARENT/$c/cpu.cfs_quota_us"
            # The subshell joins the cgroup, then becomes the namespaced process.
            (
                for h in "${HIERS[@]}"; do echo $BASHPID >"$CG/$h/$PARENT/$c/cgroup.procs"; done
                exec unshare -n sh -c 'while :; do :; done'
            ) &
        elif [ -n "$EXECS_EVERY" ] && [ $((i % 10)) -eq 5 ]; then
            (
                for h in "${HIERS[@]}"; do echo $BASHPID >"$CG/$h/$PARENT/$c/cgroup.procs"; done
                exec unshare -n sh -c "while :; do sleep $EXECS_EVERY; done"
            ) &
        else
            (
                for h in "${HIERS[@]}"; do echo $BASHPID >"$CG/$h/$PARENT/$c/cgroup.procs"; done
                # PROCS-1 sleepers beside the one the shell becomes.
                exec unshare -n sh -c "i=1; while [ \$i -lt $PROCS ]; do sleep infinity & i=\$((i + 1)); done; exec sleep infinity"
            ) &
        fi
        WL_PIDS+=($!)
    done
    # Every cgroup holds its process before any tool starts.
    local p
    for c in $NAMES; do
        for _ in $(seq 100); do
            read -r p <"$CG/memory/$PARENT/$c/cgroup.procs" && [ -n "$p" ] && break
            sleep 0.05
        done
    done
}

# ---- measuring ----------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)

cpu_ticks() { # pid -> utime+stime of all its threads, in ticks
    local s
    s=$(<"/proc/$1/stat")
    s=${s##*) }
    awk '{print $12 + $13}' <<<"$s"
}

busy_ticks() { # CPU time of the whole machine that was not idle, in ticks
    awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

workload_ns() { # CPU time of the workload cgroups, in ns
    local v=0
    [ -r "$CG/cpuacct/$PARENT/cpuacct.usage" ] && read -r v <"$CG/cpuacct/$PARENT/cpuacct.usage"
    echo "$v"
}

status_kb() { # pid key
    awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"
}

# Prints "ok|fail seconds bytes series" for one scrape into $2.
scrape() { # url file
    local w code secs size
    local zip=()
    [ "${GZIP:-0}" = 1 ] && zip=(-H 'Accept-Encoding: gzip' --compressed)
    w=$(curl -s -m 120 "${zip[@]}" -o "$2" -w '%{http_code} %{time_total} %{size_download}' "$1") || w="000 0 0"
    read -r code secs size <<<"$w"
    [ "$code" = 200 ] || { echo "fail $secs $size 0"; return; }
    echo "ok $secs $size $(grep -c -v -e '^#' -e '^$' "$2" || true)"
}

# Containers of ours that a body shows (one container_memory_usage_bytes line each).
containers_in() { grep -c "^container_memory_usage_bytes{.*id=\"/$PARENT/" "$1" || true; }

no_result() { # N interval tool peak_rss_mb ready: a row for a tool that never served them all
    printf '%s\t%ss\t%s\t-\t-\t%s\t-\t-\t-\t-\t-\t-\t%s\t-\n' "$1" "$2" "$3" "$4" "$5" | tee -a "$OUT/results.tsv"
}

run_tool() { # tool N interval
    local tool=$1 n=$2 iv=$3 port url logf body
    port=$(free_port)
    url="http://127.0.0.1:$port/metrics"
    logf="$OUT/logs/$tool-$n-${iv}s.log"
    body="$OUT/logs/$tool-$n-${iv}s.body"
    case $tool in
    cadvisor | cadvisor-strict)
        local extra=()
        [ "$tool" = cadvisor-strict ] && extra+=(-allow_dynamic_housekeeping=false)
        "$CADVISOR" -listen_ip 127.0.0.1 -port "$port" -logtostderr \
            -housekeeping_interval "${iv}s" -docker_only=false \
            -raw_cgroup_prefix_whitelist="/$PARENT" "${extra[@]}" ${CADVISOR_ARGS:-} \
            >/dev/null 2>"$logf" &
        ;;
    exporter | exporter-b)
        local bin=$EXPORTER args=${EXPORTER_ARGS:-}
        if [ "$tool" = exporter-b ]; then
            bin=${EXPORTER_B:-$EXPORTER}
            args="$args ${EXPORTER_B_ARGS:-}"
            [ -n "${EXPORTER_B:-}${EXPORTER_B_ARGS:-}" ] || die "exporter-b needs EXPORTER_B or EXPORTER_B_ARGS"
        fi
        # shellcheck disable=SC2086 # the args are lists of flags
        "$bin" --web.listen-address "127.0.0.1:$port" --housekeeping.interval "${iv}s" \
            --cgroups.include "/$PARENT" --log.level warn $args >/dev/null 2>"$logf" &
        ;;
    *) die "unknown tool $tool" ;;
    esac
    TOOL_PID=$!
    # Ready: it serves every container (not counted in the window).
    local t_start=$EPOCHREALTIME seen=0 r
    while :; do
        if ! kill -0 "$TOOL_PID" 2>/dev/null; then
            wait "$TOOL_PID" 2>/dev/null || true
            TOOL_PID=""
            log "$tool exited before serving every container: $(grep -m1 -E '^F[0-9]|panic|fatal' "$logf" | cut -c1-200)"
            no_result "$n" "$iv" "$tool" - "exited"
            return 0
        fi
        r=$(scrape "$url" "$body")
        if [ "${r%% *}" = ok ]; then
            seen=$(containers_in "$body")
            [ "$seen" -ge "$n" ] && break
        fi
        if awk -v a="$t_start" -v b="$EPOCHREALTIME" -v m="$READY_TIMEOUT" 'BEGIN{exit !(b - a > m)}'; then
            log "$tool showed $seen of $n containers after ${READY_TIMEOUT}s (last scrape: $r); see $logf"
            no_result "$n" "$iv" "$tool" "$(awk -v k="$(status_kb "$TOOL_PID" VmHWM)" 'BEGIN{printf "%.1f", k / 1024}')" ">$READY_TIMEOUT"
            stop_pid "$TOOL_PID"
            TOOL_PID=""
            return 0
        fi
        nap 1
    done
    local ready_s
    ready_s=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b - a}')
    # Settle for one interval so that the window starts in the steady state.
    nap "$iv"

    local t0=$EPOCHREALTIME c0 c1 k=0 lat=() bytes=() series=() fails=0 b0 b1 w0 w1
    c0=$(cpu_ticks "$TOOL_PID")
    b0=$(busy_ticks)
    w0=$(workload_ns)
    while [ $((k * SCRAPE_EVERY)) -lt "$DURATION" ]; do
        local due
        due=$(awk -v t="$t0" -v d=$((k * SCRAPE_EVERY)) -v now="$EPOCHREALTIME" 'BEGIN{w = t + d - now; print (w > 0 ? w : 0)}')
        nap "$due"
        local st secs size cnt
        read -r st secs size cnt <<<"$(scrape "$url" "$body")"
        if [ "$st" = ok ]; then lat+=("$secs"); bytes+=("$size"); series+=("$cnt"); else fails=$((fails + 1)); fi
        k=$((k + 1))
    done
    nap "$(awk -v t="$t0" -v d="$DURATION" -v now="$EPOCHREALTIME" 'BEGIN{w = t + d - now; print (w > 0 ? w : 0)}')"
    c1=$(cpu_ticks "$TOOL_PID")
    local t1=$EPOCHREALTIME hwm rss
    b1=$(busy_ticks)
    w1=$(workload_ns)
    hwm=$(status_kb "$TOOL_PID" VmHWM)
    rss=$(status_kb "$TOOL_PID" VmRSS)
    stop_pid "$TOOL_PID"
    TOOL_PID=""
    [ ${#lat[@]} -gt 0 ] || die "$tool: every scrape failed; see $logf"

    printf '%s\n' "${lat[@]}" | sort -g >"$OUT/lat.tmp"
    local med worst
    med=$(awk '{a[NR]=$1} END{print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}' "$OUT/lat.tmp")
    worst=$(tail -n1 "$OUT/lat.tmp")
    rm -f "$OUT/lat.tmp"
    local body_b series_n
    body_b=$(printf '%s\n' "${bytes[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    series_n=$(printf '%s\n' "${series[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    awk -v n="$n" -v iv="$iv" -v tool="$tool" -v c0="$c0" -v c1="$c1" -v hz="$CLK_TCK" \
        -v t0="$t0" -v t1="$t1" -v hwm="$hwm" -v rss="$rss" -v med="$med" -v worst="$worst" \
        -v body="$body_b" -v series="$series_n" -v b0="$b0" -v b1="$b1" -v w0="$w0" -v w1="$w1" \
        -v ready="$ready_s" -v fails="$fails" 'BEGIN{
            cpu = (c1 - c0) / hz; win = t1 - t0
            others = ((b1 - b0) / hz - cpu - (w1 - w0) / 1e9) / win
            printf "%d\t%ss\t%s\t%.2f\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%d\t%d\t%.2f\t%s\t%d\n",
                n, iv, tool, cpu, 100 * cpu / win, hwm / 1024, rss / 1024, med * 1000, worst * 1000,
                body, series, others, ready, fails
        }' | tee -a "$OUT/results.tsv"
}

printf 'containers\tinterval\ttool\tcpu_s\tcore_pct\tpeak_rss_mb\trss_mb\tscrape_median_ms\tscrape_worst_ms\tbody_bytes\tseries\tothers_cores\tready_s\tfailed_scrapes\n' \
    | tee "$OUT/results.tsv"
for n in $COUNTS; do
    log "making $n cgroups under /$PARENT (each: one process in its own network namespace)"
    t=$EPOCHREALTIME
    make_workload "$n"
    log "made in $(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b - a}') s"
    for iv in $INTERVALS; do
        for tool in $TOOLS; do
            log "$tool, $n containers, ${iv}s interval: ${DURATION}s window"
            run_tool "$tool" "$n" "$iv"
            nap 2
        done
    done
    log "removing the $n cgroups"
    kill_workload
    remove_cgroups
    NAMES=""
done

{
    echo "| containers | interval | tool | CPU s / ${DURATION} s | % of a core | peak RSS MB | RSS MB | median scrape ms | worst scrape ms | body bytes | series | others' cores | ready s |"
    echo "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    tail -n +2 "$OUT/results.tsv" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13}'
} >"$OUT/results.md"
echo
cat "$OUT/results.md"
log "results in $OUT"
