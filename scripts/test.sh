#!/bin/bash
# The whole test suite, on a fresh machine: installs and starts what the tests need, then runs
# every test, after cargo fmt --check and clippy -D warnings. Idempotent; fails loudly, naming
# what could not be had.
# Usage: scripts/test.sh            (as root: the tests make cgroups and network namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "scripts/test.sh: ERROR: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root: the tests create cgroups, network namespaces and a VM"

APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
# Alerting end to end (tests/tests/alerting_e2e.rs).
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
# InfluxDB sink tests: InfluxDB 1.x (v1 API) and VictoriaMetrics (the v2 write API).
command -v influxd >/dev/null || need+=(influxdb)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
# Runtime metadata tests (tests/tests/runtimes.rs): private dockerd, containerd, podman.
command -v dockerd >/dev/null || need+=(docker.io)
command -v containerd >/dev/null && command -v ctr >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v podman >/dev/null || need+=(podman)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
# Filesystem tests (tests/tests/filesystem.rs): a loop device with ext4 on it.
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v losetup >/dev/null && command -v umount >/dev/null || need+=(mount)
# Pods' network namespaces entered from outside (tests/tests/kubernetes_mixin.rs), the
# exporter run as nobody with chosen capabilities (least_privilege.rs), the churn soak's
# containers in network namespaces of their own (churn.rs, through benches/soak/churn.py).
{ command -v nsenter && command -v setpriv && command -v unshare; } >/dev/null || need+=(util-linux)
# Elasticsearch sink tests (tests/tests/elasticsearch.rs): osmem-server from PyPI, below.
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || need+=(python3 python3-pip)
# The alert-rule tests read the rules with PyYAML (tests/tests/alert_rules.rs).
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
# libFuzzer, built by libfuzzer-sys when clippy checks the fuzz crates, is C++.
command -v c++ >/dev/null || need+=(g++)
# The web page in a headless browser (tests/tests/web_ui.rs).
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2 \
        || { "${APT[@]}" update -qq >&2 && DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2; } \
        || die "apt-get install ${need[*]} failed"
fi

# An in-memory server speaking the OpenSearch REST API, for the Elasticsearch sink tests
# (`<site-packages>/osmem_server/bin/osmem-server`, found by tests/src/osmem.rs).
if ! python3 -c 'import osmem_server,sys; sys.exit(osmem_server.__version__ != "0.1.6")' 2>/dev/null; then
    echo "scripts/test.sh: installing osmem-server==0.1.6 (pip)" >&2
    python3 -m pip install -q osmem-server==0.1.6 >&2 \
        || python3 -m pip install -q --break-system-packages osmem-server==0.1.6 >&2 \
        || die "pip install osmem-server==0.1.6 failed"
fi

# Linters for the deployment artifacts (tests/tests/deploy.rs).
scripts/deploy-check-deps.sh

# The cgroup v2 kernel and its tools for the VM test (cached under target/).
tests/vm/prepare.sh "${CARGO_TARGET_DIR:-$PWD/target}/vm-cache"

# Style and lints first: they take a minute and fail fast.
command -v cargo >/dev/null || die "no Rust toolchain (cargo) on PATH: install it with rustup"
cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || die "clippy missing: rustup component add clippy"
cargo fmt --all --check || die "cargo fmt --all --check: run cargo fmt --all"
cargo clippy --workspace --all-targets --locked -- -D warnings || die "cargo clippy found warnings"
# The fuzz crates are workspaces of their own: checked here so that they keep building.
for fuzz in collector-core/fuzz collector-exporter/fuzz; do
    CARGO_TARGET_DIR=target/fuzz-check cargo clippy --manifest-path "$fuzz/Cargo.toml" --bins --locked \
        -- -D warnings || die "cargo clippy found warnings in $fuzz"
done
# The library's docs as docs.rs would build them: every link resolves.
RUSTDOCFLAGS="-D warnings" cargo doc -p collector-core --all-features --no-deps --locked \
    || die "cargo doc found broken or private links in collector-core's docs"

# Every test binary runs even when an earlier one fails, so one run shows every failure.
cargo test --workspace --locked --no-fail-fast "$@"
