#!/bin/sh
# Process campaign: two cgroups exec short-lived programs as fast as they can for SECS
# seconds (60 by default: pids wrap on a host with pid_max 32768) while the collector sweeps
# and lists each cgroup's processes. Prints pids used, wraps, sweeps, listings and errors.
# Run as root from the repository root: benches/soak/process-churn.sh [SECS]
set -eu
SECS=${1:-60}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
CHURN_SECS=$SECS cargo test -q -p tests --test process_churn -- --nocapture 2>&1 |
    grep -E 'churn: |test result|panicked'
