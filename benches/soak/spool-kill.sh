#!/bin/sh
# Signals campaign: SIGTERM during an outage (exit time) and SIGKILL at random moments over
# RUNS runs (100 by default) with a flaky receiver, then a run that drains the spool. Prints
# the exit time and the items received, duplicated, corrupt, dropped and missing.
# Run as root from the repository root: benches/soak/spool-kill.sh [RUNS]
set -eu
RUNS=${1:-100}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
SOAK_RUNS=$RUNS cargo test -q -p tests --test spool_signals -- --nocapture --test-threads 1 2>&1 |
    grep -E '(SIGTERM|SIGKILL) |test result|panicked'
