#!/bin/bash
# Boot a real cgroup v2 kernel under qemu (TCG) with an initramfs holding PROBE_BINARY, set up the
# known workloads of tests/vm/init.sh in /sys/fs/cgroup/test.slice/{busy,mem,io,oom}, run
#   /probe [PROBE ARGS...]
# inside the VM, and print the probe's stdout on stdout. Exit code = the probe's exit code.
# The probe's stderr and the VM's setup lines ("vm-setup: ...") go to stderr.
#
# Usage: tests/vm/run.sh CACHE_DIR PROBE_BINARY [PROBE ARGS...]
#   CACHE_DIR is what tests/vm/prepare.sh CACHE_DIR filled.
# Environment: VM_TIMEOUT (seconds, default 180), VM_KEEP=1 keeps the temp dir (path on stderr),
# VM_MEM (MiB, default 512), VM_CPUS (default 1), VM_EXTRA=/path/a:/path/b puts each of these
# executables (and its shared libraries) at /extra/<file name> beside the probe.
# Exit codes: probe's code on success; 90 = bad usage/missing input; 91 = VM failed or timed out
# (markers missing; the console tail is printed on stderr).
set -euo pipefail

die() { echo "run.sh: ERROR: $*" >&2; exit 90; }

[ $# -ge 2 ] || die "usage: $0 CACHE_DIR PROBE_BINARY [PROBE ARGS...]"
CACHE_DIR=$1
PROBE=$2
shift 2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIMEOUT=${VM_TIMEOUT:-180}
MEM=${VM_MEM:-512}
CPUS=${VM_CPUS:-1}
EXTRA=()
[ -z "${VM_EXTRA:-}" ] || IFS=: read -r -a EXTRA <<<"$VM_EXTRA"

for f in vmlinuz configfs.ko null_blk.ko; do
    [ -s "$CACHE_DIR/$f" ] || die "$CACHE_DIR/$f missing: run tests/vm/prepare.sh $CACHE_DIR first"
done
[ -f "$PROBE" ] && [ -x "$PROBE" ] || die "probe binary $PROBE is not an executable file"
for x in "${EXTRA[@]}"; do
    [ -f "$x" ] && [ -x "$x" ] || die "VM_EXTRA: $x is not an executable file"
done
case "$MEM$CPUS" in *[!0-9]*) die "VM_MEM and VM_CPUS must be numbers" ;; esac
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run tests/vm/prepare.sh"
command -v cpio >/dev/null || die "cpio missing: run tests/vm/prepare.sh"
[ -x /bin/busybox ] || die "/bin/busybox missing: run tests/vm/prepare.sh"
for a in "$@"; do
    case "$a" in *$'\n'*) die "probe arguments must not contain newlines" ;; esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cgv2-vm.XXXXXX")
cleanup() {
    if [ "${VM_KEEP:-0}" = 1 ]; then
        echo "run.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp,run,modules}
cp /bin/busybox "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
cp "$HERE/init.sh" "$ROOT/init"
chmod 755 "$ROOT/init"
cp "$CACHE_DIR/configfs.ko" "$CACHE_DIR/null_blk.ko" "$ROOT/modules/"
mknod "$ROOT/dev/console" c 5 1 2>/dev/null || true

# An executable (debug info stripped from a copy: smaller initramfs, faster boot) and its
# shared libraries, at their host paths.
install_exe() { # source, destination in the initramfs
    if command -v objcopy >/dev/null && objcopy --strip-debug "$1" "$2" 2>/dev/null; then
        :
    else
        cp "$1" "$2"
    fi
    chmod 755 "$2"
    local ldd_out line lib
    ldd_out=$(ldd "$1" 2>&1 || true)
    case "$ldd_out" in
        *"not a dynamic executable"* | *"statically linked"*) return 0 ;;
    esac
    while read -r line; do
        lib=""
        case "$line" in
            *"=> not found"*) die "ldd $1: $line" ;;
            *" => /"*) lib=${line#* => }; lib=${lib%% (*} ;;
            /*) lib=${line%% (*} ;;
        esac
        [ -n "$lib" ] || continue
        [ -e "$ROOT$lib" ] && continue
        mkdir -p "$ROOT$(dirname "$lib")"
        cp -L "$lib" "$ROOT$lib"
    done <<<"$ldd_out"
}
install_exe "$PROBE" "$ROOT/probe"
for x in "${EXTRA[@]}"; do
    mkdir -p "$ROOT/extra"
    install_exe "$x" "$ROOT/extra/$(basename "$x")"
done

: >"$ROOT/probe.args"
for a in "$@"; do printf '%s\n' "$a" >>"$ROOT/probe.args"; done

(cd "$ROOT" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$WORK/initrd.gz"

CONSOLE=$WORK/console.log
start=$(date +%s.%N)
set +e
timeout --kill-after=5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m "$MEM" -smp "$CPUS" -nographic -no-reboot \
    -kernel "$CACHE_DIR/vmlinuz" -initrd "$WORK/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1" </dev/null >"$CONSOLE" 2>&1
qrc=$?
set -e
end=$(date +%s.%N)
# Drop CRs and the terminal escapes SeaBIOS and the kernel emit.
sed -e 's/\r$//' -e 's/\x1bc//g' -e 's/\x1b\[[0-9?;]*[A-Za-z]//g' <"$CONSOLE" | tr '\r' '\n' >"$CONSOLE.txt"
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')

fail_vm() {
    echo "run.sh: ERROR: $* (qemu exit $qrc after ${secs}s, timeout ${TIMEOUT}s). Console tail:" >&2
    tail -n 60 "$CONSOLE.txt" >&2
    exit 91
}

grep -E '^vm-setup: ' "$CONSOLE.txt" >&2 || true
echo "run.sh: VM ran ${secs}s" >&2
if ! grep -q '^=====PROBE-END=====$' "$CONSOLE.txt"; then
    [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ] && fail_vm "VM timed out before the probe finished"
    fail_vm "probe output markers missing"
fi
exit_line=$(grep -E '^=====PROBE-EXIT=[0-9]+=====$' "$CONSOLE.txt" | tail -n1)
[ -n "$exit_line" ] || fail_vm "probe exit marker missing"
code=${exit_line#=====PROBE-EXIT=}
code=${code%=====}

awk '/^=====PROBE-STDERR-BEGIN=====$/ {p=1; next} /^=====PROBE-STDERR-END=====$/ {p=0} p' "$CONSOLE.txt" >&2
awk '/^=====PROBE-BEGIN=====$/ {p=1; next} /^=====PROBE-END=====$/ {p=0} p' "$CONSOLE.txt"
exit "$code"
