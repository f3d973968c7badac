#!/bin/sh
# /init of the test initramfs built by tests/vm/run.sh. Runs as PID 1 inside a qemu VM with a
# Debian 6.1 kernel: mounts the pseudo filesystems, sets up a cgroup v2 tree with known workloads,
# runs /probe with the arguments listed in /probe.args (one per line) and prints its output
# between markers on the serial console, then powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm

say() { echo "vm-setup: $*"; }
fail() { echo "vm-setup: FAILED: $*"; }

# Loopback up: probes that start a server (the exporter) listen on 127.0.0.1.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up || fail "loopback up"

CG=/sys/fs/cgroup
mount -t cgroup2 cgroup2 $CG || fail "mount cgroup2"
say "kernel $(uname -r) cpus $(nproc)"
say "controllers: $(cat $CG/cgroup.controllers)"
for c in cpu memory io pids cpuset; do
    echo "+$c" >$CG/cgroup.subtree_control || fail "enable +$c at root"
done
say "root subtree_control: $(cat $CG/cgroup.subtree_control)"

insmod /modules/configfs.ko || fail "insmod configfs.ko"
insmod /modules/null_blk.ko nr_devices=1 gb=1 || fail "insmod null_blk.ko"
i=0
while [ ! -b /dev/nullb0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/nullb0 ] || fail "/dev/nullb0 did not appear"
say "nullb0 dev $(cat /sys/block/nullb0/dev 2>/dev/null)"

T=$CG/test.slice
mkdir -p $T
for c in cpu memory io pids cpuset; do
    echo "+$c" >$T/cgroup.subtree_control || fail "enable +$c in test.slice"
done
mkdir -p $T/busy $T/mem $T/io $T/oom

# busy: a CPU burner capped at half a CPU.
echo "50000 100000" >$T/busy/cpu.max || fail "busy cpu.max"
echo 256M >$T/busy/memory.max || fail "busy memory.max"
echo 100 >$T/busy/pids.max || fail "busy pids.max"
echo 200 >$T/busy/cpu.weight || fail "busy cpu.weight"
sh -c "echo \$\$ >$T/busy/cgroup.procs; touch /run/ready.busy; while :; do :; done" &

# mem: 32 MiB in a tmpfs file written from inside the cgroup (shmem is charged to it).
mkdir -p /memhold && mount -t tmpfs -o size=64M tmpfs /memhold
sh -c "echo \$\$ >$T/mem/cgroup.procs; dd if=/dev/zero of=/memhold/fill bs=1M count=32 2>/dev/null; touch /run/ready.mem; exec sleep 100000" &

# io: direct reads and writes on the null_blk device.
sh -c "echo \$\$ >$T/io/cgroup.procs
dd if=/dev/nullb0 of=/dev/null bs=1M count=20 iflag=direct 2>/dev/null || echo 'vm-setup: FAILED: io read'
dd if=/dev/zero of=/dev/nullb0 bs=1M count=10 oflag=direct 2>/dev/null || echo 'vm-setup: FAILED: io write'
touch /run/ready.io; exec sleep 100000" &

# oom: a 64 MiB buffer in a 16 MiB cgroup without swap gets OOM-killed.
echo 16M >$T/oom/memory.max || fail "oom memory.max"
echo 0 >$T/oom/memory.swap.max || fail "oom memory.swap.max"
sh -c "echo \$\$ >$T/oom/cgroup.procs; dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; touch /run/ready.oom; exec sleep 100000" &

i=0
while [ $i -lt 300 ]; do
    [ -e /run/ready.busy ] && [ -e /run/ready.mem ] && [ -e /run/ready.io ] && [ -e /run/ready.oom ] && break
    sleep 0.1
    i=$((i + 1))
done
for w in busy mem io oom; do [ -e /run/ready.$w ] || fail "workload $w not ready"; done
sleep 2
say "io.stat: $(cat $T/io/io.stat | tr '\n' ';')"
say "oom memory.events: $(cat $T/oom/memory.events | tr '\n' ';')"
say "workloads ready"

# Keep the kernel quiet while the probe's output goes over the console.
echo "1 4 1 7" >/proc/sys/kernel/printk

set --
if [ -f /probe.args ]; then
    while IFS= read -r a; do set -- "$@" "$a"; done </probe.args
fi
cd /
RUST_BACKTRACE=1 /probe "$@" >/tmp/probe.out 2>/tmp/probe.err
rc=$?
echo "=====PROBE-STDERR-BEGIN====="
cat /tmp/probe.err
[ -s /tmp/probe.err ] && [ "$(tail -c1 /tmp/probe.err | wc -l)" -eq 0 ] && echo
echo "=====PROBE-STDERR-END====="
echo "=====PROBE-BEGIN====="
cat /tmp/probe.out
[ -s /tmp/probe.out ] && [ "$(tail -c1 /tmp/probe.out | wc -l)" -eq 0 ] && echo
echo "=====PROBE-END====="
echo "=====PROBE-EXIT=$rc====="
sync
poweroff -f
