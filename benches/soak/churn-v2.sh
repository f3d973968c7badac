#!/bin/bash
# The churn soak (benches/soak/churn.py) on a real cgroup v2 kernel: Debian's 6.1 kernel under
# qemu (TCG, tests/vm/), the release exporter in the VM beside the vm_churn probe
# (tests/src/bin/vm_churn/), which makes and destroys the containers, scrapes the exporter
# every second and prints one JSON line of figures on stdout (the VM's and the probe's log on
# stderr). No InfluxDB in the VM: events are counted from the exporter's /metrics and
# /api/v1/events.
#
#     benches/soak/churn-v2.sh                                   # 50 stay, 300/min, 60 s
#     STABLE=200 RATE=600 DURATION=900 WARMUP=60 SETTLE=20 benches/soak/churn-v2.sh
#     VM_MEM=2048 STABLE=1000 RATE=1000 DURATION=600 WARMUP=60 SETTLE=20 benches/soak/churn-v2.sh
#                                                     # the runs in docs/RELIABILITY.md
#
# Environment: STABLE, RATE (a minute), DURATION, WARMUP, SETTLE, MIN_LIFE, MAX_LIFE (seconds),
# INTERVAL (the exporter's), SEED, EXPORTER_FLAGS (more exporter flags, space-separated, e.g.
# "--web.ui-history=0"); VM_MEM (MiB, default 1024), VM_CPUS (default 2), VM_TIMEOUT
# (default: the run's length plus 10 minutes). Needs root and what scripts/test.sh installs
# (it runs tests/vm/prepare.sh, which this runs too). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."

STABLE=${STABLE:-50}
RATE=${RATE:-300}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-20}
SETTLE=${SETTLE:-10}
MIN_LIFE=${MIN_LIFE:-4}
MAX_LIFE=${MAX_LIFE:-20}
INTERVAL=${INTERVAL:-1s}
SEED=${SEED:-0}
extra=()
for f in ${EXPORTER_FLAGS:-}; do extra+=(--exporter-flag "$f"); done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$PWD/$CARGO_TARGET_DIR ;; esac
CACHE=$CARGO_TARGET_DIR/vm-cache

cargo build -q --release -p collector-exporter -p tests --bin collector-exporter --bin vm_churn
tests/vm/prepare.sh "$CACHE"

# The VM boots in some 15 s; the probe makes the stable containers, waits for two sweeps,
# churns, lets the last ones live out their lives and settles.
secs=$(awk -v d="$DURATION" -v w="$MAX_LIFE" -v s="$SETTLE" 'BEGIN { printf "%d", d + w + s + 600 }')
start=$(date +%s)
VM_EXTRA=$CARGO_TARGET_DIR/release/collector-exporter VM_MEM=${VM_MEM:-1024} VM_CPUS=${VM_CPUS:-2} \
    VM_TIMEOUT=${VM_TIMEOUT:-$secs} \
    tests/vm/run.sh "$CACHE" "$CARGO_TARGET_DIR/release/vm_churn" \
    --stable "$STABLE" --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" \
    --settle "$SETTLE" --min-life "$MIN_LIFE" --max-life "$MAX_LIFE" --interval "$INTERVAL" \
    --seed "$SEED" "${extra[@]}"
echo "churn-v2.sh: $(($(date +%s) - start)) s in all (boot included)" >&2
