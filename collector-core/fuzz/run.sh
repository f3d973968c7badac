#!/usr/bin/env bash
# Runs every fuzz target of collector-core for SECS seconds each (default 60), one after the
# other. Exits non-zero if any target crashed (a panic, a failed invariant, a sanitizer report,
# a timeout or running out of memory), including on a file under regressions/.
#
#   collector-core/fuzz/run.sh [SECS] [TARGET...]
#
# Corpus layout (see docs/FUZZING.md):
#   seeds/<target>/        tracked: real kernel files from tests/fixtures
#   regressions/<target>/  tracked: inputs that once failed; replayed at the start of each run
#   corpus/<target>/       untracked: what libFuzzer grows, kept between runs
#   artifacts/<target>/    untracked: crash files and the log of the last run (fuzz.log)
set -euo pipefail

secs="${1:-60}"
shift || true
case "$secs" in
'' | *[!0-9]*) echo "usage: $0 [SECS] [TARGET...]" >&2; exit 2 ;;
esac

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir/.."   # collector-core/, where `cargo fuzz` looks for fuzz/

# cargo-fuzz passes -Z flags to rustc; RUSTC_BOOTSTRAP lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build

failed=()
printf '%-14s %6s %12s %8s  %s\n' target secs executions exec/s result
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    dirs=("fuzz/corpus/$t" "fuzz/seeds/$t")
    if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
        dirs+=("fuzz/regressions/$t")
    fi
    log="fuzz/artifacts/$t/fuzz.log"
    status=0
    cargo fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        failed+=("$t")
        crash="$(grep -o 'Test unit written to .*' "$log" | tail -n1 | sed 's/^Test unit written to //')"
        result="FAILED (exit $status) ${crash:-see $log}"
    fi
    printf '%-14s %6s %12s %8s  %s\n' "$t" "$secs" "${execs:--}" "${rate:--}" "$result"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo >&2
    for t in "${failed[@]}"; do
        echo "== $t: fuzz/artifacts/$t/fuzz.log" >&2
        grep -E -A3 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' \
            "fuzz/artifacts/$t/fuzz.log" | head -n 12 >&2 || true
    done
    echo "crashes in: ${failed[*]}" >&2
    exit 1
fi
