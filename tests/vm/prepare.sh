#!/bin/bash
# Prepare what tests/vm/run.sh needs to boot a real cgroup v2 kernel under qemu:
#   - host tools: qemu-system-x86_64, a static busybox, cpio (installed with apt when missing)
#   - CACHE_DIR/vmlinuz, CACHE_DIR/configfs.ko, CACHE_DIR/null_blk.ko from the Debian
#     linux-image-6.1.0-*-amd64 package (downloaded once; later runs reuse the cache)
# Usage: tests/vm/prepare.sh CACHE_DIR
# Exits non-zero with a message naming what could not be had.
set -euo pipefail

die() { echo "prepare.sh: ERROR: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 CACHE_DIR"
CACHE_DIR=$1
mkdir -p "$CACHE_DIR" || die "cannot create cache dir $CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)

# One preparer at a time per cache (parallel test runs share it).
exec 9>"$CACHE_DIR/.lock"
flock -w 900 9 || die "timed out waiting for the lock on $CACHE_DIR/.lock"

APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
apt_updated=0
apt_update_once() {
    if [ $apt_updated -eq 0 ]; then
        "${APT[@]}" update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
}

# --- host tools --------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
[ -x /bin/busybox ] && file_is_static=$(ldd /bin/busybox 2>&1 || true) || file_is_static=""
case "$file_is_static" in
    *"not a dynamic executable"* | *"statically linked"*) ;;
    *) missing+=(busybox-static) ;;
esac
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]} and not root to install them"
    echo "prepare.sh: installing ${missing[*]}" >&2
    apt_update_once
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || { apt_updated=0; apt_update_once
             DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2; } \
        || die "apt-get install ${missing[*]} failed"
fi
command -v qemu-system-x86_64 >/dev/null 2>&1 || die "qemu-system-x86_64 still missing after install"
command -v cpio >/dev/null 2>&1 || die "cpio still missing after install"
[ -x /bin/busybox ] || die "/bin/busybox (busybox-static) still missing after install"

# --- kernel ------------------------------------------------------------------
if [ -s "$CACHE_DIR/vmlinuz" ] && [ -s "$CACHE_DIR/configfs.ko" ] && [ -s "$CACHE_DIR/null_blk.ko" ] \
    && [ -s "$CACHE_DIR/kernel-version" ]; then
    echo "prepare.sh: cache ready in $CACHE_DIR (kernel $(cat "$CACHE_DIR/kernel-version"))" >&2
    exit 0
fi

pick_package() {
    local p
    p=$(apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1)
    if [ -z "$p" ]; then
        p=$(apt-cache pkgnames linux-image-6.1 2>/dev/null \
            | grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' | sort -t- -k4,4n | tail -n1)
    fi
    echo "$p"
}
pkg=$(pick_package)
if [ -z "$pkg" ]; then
    apt_update_once
    pkg=$(pick_package)
fi
[ -n "$pkg" ] || die "no linux-image-6.1.0-*-amd64 package known to apt (apt-cache depends linux-image-amd64 is empty)"

deb=$(ls "$CACHE_DIR"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    echo "prepare.sh: downloading $pkg" >&2
    ( cd "$CACHE_DIR" && "${APT[@]}" -o APT::Sandbox::User=root download "$pkg" >&2 ) \
        || { apt_update_once; ( cd "$CACHE_DIR" && "${APT[@]}" -o APT::Sandbox::User=root download "$pkg" >&2 ); } \
        || die "apt-get download $pkg failed"
    deb=$(ls "$CACHE_DIR"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || die "apt-get download $pkg produced no .deb in $CACHE_DIR"
fi

tmp=$(mktemp -d "$CACHE_DIR/extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp" || die "dpkg-deb -x $deb failed"

vmlinuz=$(ls "$tmp"/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $deb"
kver=${vmlinuz##*/vmlinuz-}

extract_ko() { # relative path without .ko suffix, output name
    local base="$tmp/lib/modules/$kver/kernel/$1" out="$CACHE_DIR/$2.tmp"
    if [ -f "$base.ko" ]; then
        cp "$base.ko" "$out"
    elif [ -f "$base.ko.xz" ]; then
        xz -dc "$base.ko.xz" >"$out" || die "xz -d $base.ko.xz failed"
    elif [ -f "$base.ko.zst" ]; then
        zstd -qdc "$base.ko.zst" >"$out" || die "zstd -d $base.ko.zst failed"
    elif [ -f "$base.ko.gz" ]; then
        gzip -dc "$base.ko.gz" >"$out" || die "gzip -d $base.ko.gz failed"
    else
        die "module $1.ko not found in $deb"
    fi
    mv "$out" "$CACHE_DIR/$2.ko"
}
extract_ko fs/configfs/configfs configfs
extract_ko drivers/block/null_blk/null_blk null_blk
cp "$vmlinuz" "$CACHE_DIR/vmlinuz.tmp" && mv "$CACHE_DIR/vmlinuz.tmp" "$CACHE_DIR/vmlinuz"
echo "$kver" >"$CACHE_DIR/kernel-version"
rm -f "$deb"
echo "prepare.sh: cache ready in $CACHE_DIR (kernel $kver)" >&2
