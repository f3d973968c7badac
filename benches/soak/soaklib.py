"""What the soak scripts share: the host's cgroup hierarchies, a free loopback port, a
process's descriptors, threads and RSS, and stopping what they started."""

import os
import signal
import socket
import subprocess

CG = "/sys/fs/cgroup"


def hierarchies():
    """Where a cgroup is made: the unified mount on cgroup v2, else each v1 hierarchy but
    cpuset (a cgroup there takes no task until its cpus and mems are set), each once (links
    such as `cpu` and `cpuacct` name a joint hierarchy again)."""
    if os.path.isfile(os.path.join(CG, "cgroup.procs")):
        return [CG]
    out = []
    for d in sorted(os.listdir(CG)):
        p = os.path.join(CG, d)
        if d == "cpuset" or os.path.islink(p):
            continue
        if os.path.isfile(os.path.join(p, "cgroup.procs")):
            out.append(p)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_figures(pid):
    """Open descriptors, threads and resident memory of process `pid`."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": len(os.listdir(f"/proc/{pid}/task")),
            "rss_mb": round(rss / 2**20, 1)}


def stop(p):
    """SIGTERM, then SIGKILL after 15 s."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def remove_cgroup(base):
    """Removes cgroup directory `base` and the cgroups in it (tasks gone first), retrying a
    moment for tasks still leaving; says what could not be removed."""
    import sys
    import time
    if not os.path.isdir(base):
        return
    for c in os.listdir(base):
        p = os.path.join(base, c)
        if os.path.isdir(p):
            remove_cgroup(p)
    for _ in range(50):
        try:
            os.rmdir(base)
            return
        except OSError as e:
            err = e
            time.sleep(0.02)
    print(f"could not remove {base}: {err}", file=sys.stderr)
