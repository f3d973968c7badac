#!/bin/sh
# Names campaign: a cgroup named with quotes, a backslash, braces, spaces, a comma, `=`, a
# tab, non-ASCII and an emoji, read back from /metrics (text and OpenMetrics, promtool), the
# JSON API, a real InfluxDB and the OpenSearch-API server.
# Run as root from the repository root: benches/soak/odd-names.sh
set -eu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo test -q -p tests --test odd_names -- --nocapture 2>&1 |
    grep -E 'influx id tags|test result|panicked'
