#!/usr/bin/env bash
# Runs every fuzz target of collector-core and collector-exporter for SECS seconds each
# (default 60). Exits non-zero if any target crashed (a panic, a failed invariant, a sanitizer
# report, a timeout or running out of memory), including on a file under regressions/.
#
#   collector-core/fuzz/run.sh [SECS] [TARGET...]
#   FUZZ_JOBS=4 collector-core/fuzz/run.sh 1800     # four targets at a time
#
# Nice'd to 10, so a build on the same machine comes first. Corpus layout, per crate (see
# docs/FUZZING.md):
#   fuzz/seeds/<target>/        tracked: real inputs (kernel files, answers, config files)
#   fuzz/regressions/<target>/  tracked: inputs that once failed; replayed at the start of each run
#   fuzz/corpus/<target>/       untracked: what libFuzzer grows, kept between runs
#   fuzz/artifacts/<target>/    untracked: crash files and the log of the last run (fuzz.log)
set -euo pipefail

secs="${1:-60}"
shift || true
case "$secs" in
'' | *[!0-9]*) echo "usage: $0 [SECS] [TARGET...]" >&2; exit 2 ;;
esac
jobs="${FUZZ_JOBS:-1}"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
crates=("$repo/collector-core" "$repo/collector-exporter")

# cargo-fuzz passes -Z flags to rustc; RUSTC_BOOTSTRAP lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it" >&2
    cargo install cargo-fuzz --locked
fi

# Which crate holds each target.
declare -A home
all=()
for c in "${crates[@]}"; do
    (cd "$c" && cargo fuzz build) >&2
    while read -r t; do
        home[$t]="$c"
        all+=("$t")
    done < <(cd "$c" && cargo fuzz list)
done
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=("${all[@]}")
fi
for t in "${targets[@]}"; do
    [ -n "${home[$t]:-}" ] || { echo "no fuzz target $t (have: ${all[*]})" >&2; exit 2; }
done

# One target: its result line goes to fuzz/artifacts/<target>/result.
run_one() {
    local t="$1" c="${home[$1]}"
    cd "$c"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    local dirs=("fuzz/corpus/$t" "fuzz/seeds/$t")
    if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
        dirs+=("fuzz/regressions/$t")
    fi
    local log="fuzz/artifacts/$t/fuzz.log" status=0 result
    nice -n 10 cargo fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || status=$?
    local execs rate cov
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)"
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        local crash
        crash="$(grep -o 'Test unit written to .*' "$log" | tail -n1 | sed 's/^Test unit written to //')"
        result="FAILED (exit $status) ${crash:-see $c/$log}"
    fi
    printf '%-14s %6s %12s %8s %6s %7s  %s\n' "$t" "$secs" "${execs:--}" "${rate:--}" "${cov:--}" \
        "$(ls "fuzz/corpus/$t" | wc -l)" "$result" >"fuzz/artifacts/$t/result"
}

running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

printf '%-14s %6s %12s %8s %6s %7s  %s\n' target secs executions exec/s cov corpus result
failed=()
for t in "${targets[@]}"; do
    r="${home[$t]}/fuzz/artifacts/$t/result"
    cat "$r"
    grep -q ' ok$' "$r" || failed+=("$t")
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo >&2
    for t in "${failed[@]}"; do
        log="${home[$t]}/fuzz/artifacts/$t/fuzz.log"
        echo "== $t: $log" >&2
        grep -E -A3 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' "$log" | head -n 12 >&2 || true
    done
    echo "crashes in: ${failed[*]}" >&2
    exit 1
fi
