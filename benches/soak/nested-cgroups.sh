#!/bin/sh
# Scale campaign: CHAINS chains of 50 nested cgroups (100 by default: 5,000 cgroups) in every
# hierarchy, found, swept and forgotten by the exporter. Prints the sweep time and its RSS.
# The exporter is a release build (the test harness stays a debug one).
# Run as root from the repository root: benches/soak/nested-cgroups.sh [CHAINS]
set -eu
CHAINS=${1:-100}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p collector-exporter
export NESTED_EXPORTER="$CARGO_TARGET_DIR/release/collector-exporter"
NESTED_CHAINS=$CHAINS cargo test -q -p tests --test nested_cgroups -- --nocapture 2>&1 |
    grep -E 'nested: |test result|panicked'
