#!/bin/bash
# The whole test suite, on a fresh machine: installs and starts what the tests need, then runs
# every test. Idempotent; fails loudly, naming what could not be had.
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
if [ ${#need[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2 \
        || { "${APT[@]}" update -qq >&2 && DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2; } \
        || die "apt-get install ${need[*]} failed"
fi

# The cgroup v2 kernel and its tools for the VM test (cached under target/).
tests/vm/prepare.sh "${CARGO_TARGET_DIR:-$PWD/target}/vm-cache"

cargo test --workspace --locked "$@"
