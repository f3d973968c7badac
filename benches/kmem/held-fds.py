#!/usr/bin/env python3
"""Kernel memory of held descriptors, as docs/PERFORMANCE.md quotes it.

Opens N descriptors of each kind the collector may hold, reads the files once (as a sweep
does), and prints the growth of the kernel's slab (/proc/meminfo) per descriptor:
  - a cgroup directory (O_DIRECTORY), as every followed cgroup directory is held;
  - a cgroup file, read once, as `--housekeeping.hold-files` holds them (the read makes the
    kernel allocate the file's seq_file page, which stays while the file is open);
  - a process's net/dev, read once, as each container's process handle holds it;
  - an inotify IN_MODIFY watch on a cgroup directory, as the spec watch keeps on each of a
    container's spec directories (N cgroups are made for it, under the pids hierarchy where
    there is one, and removed after; their own slab is not counted).
Usage: sudo benches/kmem/held-fds.py [N]   (default 10000; needs N+100 open files allowed)
The figures move with other activity on the machine: run it on a quiet one, more than once.
"""
import ctypes
import os
import resource
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
CG = "/sys/fs/cgroup/memory" if os.path.isdir("/sys/fs/cgroup/memory") else "/sys/fs/cgroup"
FILE = os.path.join(CG, "memory.usage_in_bytes" if CG.endswith("memory") else "memory.stat")

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, N + 100)), hard))


def slab_kib():
    for line in open("/proc/meminfo"):
        if line.startswith("Slab:"):
            return int(line.split()[1])
    raise SystemExit("no Slab line in /proc/meminfo")


def measure(name, open_one):
    before = slab_kib()
    fds = [open_one() for _ in range(N)]
    grown = slab_kib() - before
    for fd in fds:
        os.close(fd)
    print(f"{name}: {N} held, slab +{grown} KiB, {grown * 1024 / N:.0f} bytes each")


def dir_fd():
    return os.open(CG, os.O_RDONLY | os.O_DIRECTORY)


def read_file_fd():
    fd = os.open(FILE, os.O_RDONLY)
    os.pread(fd, 4096, 0)
    return fd


def net_dev_fd():
    fd = os.open("/proc/self/net/dev", os.O_RDONLY)
    os.pread(fd, 4096, 0)
    return fd


measure(f"directory {CG}", dir_fd)
measure(f"file {FILE}, read once", read_file_fd)
measure("/proc/self/net/dev, read once", net_dev_fd)


def watches():
    libc = ctypes.CDLL(None, use_errno=True)
    base = "/sys/fs/cgroup/pids" if os.path.isdir("/sys/fs/cgroup/pids") else "/sys/fs/cgroup"
    top = os.path.join(base, f"ccol-kmem-{os.getpid()}")
    os.mkdir(top)
    dirs = [os.path.join(top, f"c{i}") for i in range(N)]
    try:
        for d in dirs:
            os.mkdir(d)
        fd = libc.inotify_init1(os.O_CLOEXEC)
        if fd < 0:
            raise SystemExit(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        IN_MODIFY, IN_ONLYDIR = 0x2, 0x01000000
        before = slab_kib()
        for d in dirs:
            if libc.inotify_add_watch(fd, d.encode(), IN_MODIFY | IN_ONLYDIR) < 0:
                raise SystemExit(f"inotify_add_watch {d}: {os.strerror(ctypes.get_errno())}")
        grown = slab_kib() - before
        os.close(fd)
        print(f"inotify watch on a cgroup directory: {N} watched, slab +{grown} KiB, "
              f"{grown * 1024 / N:.0f} bytes each")
    finally:
        for d in dirs:
            if os.path.isdir(d):
                os.rmdir(d)
        os.rmdir(top)


watches()
