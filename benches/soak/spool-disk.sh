#!/bin/sh
# Disk campaign: the sinks' spool on a 1 MiB tmpfs that fills, under a read-only bind mount,
# and removed while running. Prints what was made, dropped, kept and delivered.
# Run as root from the repository root: benches/soak/spool-disk.sh
set -eu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo test -q -p tests --test spool_faults -- --nocapture 2>&1 |
    grep -E '(full 1 MiB|read-only spool|removed spool)|test result|panicked'
