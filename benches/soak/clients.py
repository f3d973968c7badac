#!/usr/bin/env python3
"""Clients that misbehave, and one that does not: what the exporter's HTTP side holds under
200 concurrent scrapers, a thousand idle connections (plain and TLS), a reader taking one byte
a second, and scrapes during sweeps of many containers. Prints one line per figure.

    benches/soak/clients.py                          # the exporter from target/release
    EXPORTER=target/debug/collector-exporter CONTAINERS=200 benches/soak/clients.py
    CONTAINERS=10000 benches/soak/clients.py         # scrapes during 10,000-container sweeps
    GZIP=0 benches/soak/clients.py                   # plain-text scrapes (each written apart)
    ONLY=concurrent,slow_reader benches/soak/clients.py   # some phases only

Figures: a well-behaved client's scrape latency (p50/p99/max) during each phase, the
exporter's descriptors, threads and RSS, how many idle connections it kept, and how long
before it cut the slow reader. Needs root (cgroups). Stops what it started (by pid) and removes
its cgroups on any exit.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soaklib import free_port, hierarchies, proc_figures, remove_cgroup, stop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXPORTER = os.environ.get("EXPORTER", os.path.join(REPO, "target/release/collector-exporter"))
CONTAINERS = int(os.environ.get("CONTAINERS", "200"))
IDLE = int(os.environ.get("IDLE", "1000"))
SCRAPERS = int(os.environ.get("SCRAPERS", "200"))
PHASE = float(os.environ.get("PHASE", "20"))
GZIP = os.environ.get("GZIP", "1") != "0"
PARENT = f"ccol-clients-{os.getpid()}"

started = []
made = []


def die(msg):
    print(f"clients.py: {msg}", file=sys.stderr)
    sys.exit(1)




def make_cgroups(n):
    for h in hierarchies():
        base = os.path.join(h, PARENT)
        os.mkdir(base)
        made.append(base)
        for i in range(n):
            os.mkdir(os.path.join(base, f"c{i}"))


def remove_cgroups():
    for base in reversed(made):
        remove_cgroup(base)




def start_exporter(extra=()):
    port = free_port()
    args = [EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--housekeeping.interval=1s",
            f"--cgroups.include=/{PARENT}", *extra]
    log = tempfile.TemporaryFile()
    p = subprocess.Popen(args, stdout=log, stderr=log)
    started.append(p)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return p, port, log
        except OSError:
            if p.poll() is not None:
                log.seek(0)
                die(f"the exporter exited: {log.read().decode(errors='replace')}")
            time.sleep(0.1)
    die("the exporter did not listen within 30 s")






def scrape(port, tls=None, timeout=30):
    """One scrape, asking for gzip as Prometheus does (GZIP=0: plain text)."""
    scheme = "https" if tls else "http"
    headers = {"Accept-Encoding": "gzip"} if GZIP else {}
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}/metrics", headers=headers)
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout, context=tls) as r:
        body = r.read()
    return time.perf_counter() - t0, len(body)


def latency(port, seconds, tls=None):
    """A well-behaved scraper, one request at a time: latency percentiles and failures."""
    got, failed = [], 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            got.append(scrape(port, tls)[0])
        except Exception:
            failed += 1
            time.sleep(0.1)
        time.sleep(0.05)
    got.sort()
    pick = lambda q: round(got[min(len(got) - 1, int(q * len(got)))] * 1000, 1) if got else None
    return {"scrapes": len(got), "failed": failed, "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "max_ms": round(got[-1] * 1000, 1) if got else None}


def probe_apart(port, seconds, tls=None):
    """`latency` in a process of its own: the scrapers' threads share this one's GIL, and a
    probe among them would measure the GIL, not the exporter."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    out, into = ctx.Pipe(duplex=False)
    child = ctx.Process(target=lambda: into.send(latency(port, seconds, tls)))
    child.start()
    got = out.recv()
    child.join()
    return got


def report(name, **figures):
    print(f"{name}: {json.dumps(figures)}", flush=True)


def phase_concurrent(p, port):
    stop_at = time.time() + PHASE
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def hammer():
        while time.time() < stop_at:
            try:
                scrape(port)
                k = "ok"
            except Exception:
                k = "failed"
            with lock:
                counts[k] += 1

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(SCRAPERS)]
    for t in threads:
        t.start()
    time.sleep(1)
    peak = proc_figures(p.pid)
    probe = probe_apart(port, PHASE - 2)
    for t in threads:
        t.join()
    report("concurrent", scrapers=SCRAPERS, seconds=PHASE, scrapes=counts["ok"],
           failed=counts["failed"], probe=probe, exporter=peak)


def alive(s):
    """Whether the server still holds the connection (no EOF or reset waiting)."""
    try:
        s.setblocking(False)
        data = s.recv(1, socket.MSG_PEEK)
        return data != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def phase_idle(p, port, tls_port=None, ctx=None):
    label = "idle_tls" if tls_port else "idle"
    target = tls_port or port
    conns, refused = [], 0
    for _ in range(IDLE):
        try:
            s = socket.create_connection(("127.0.0.1", target), timeout=5)
            conns.append(s)
        except OSError:
            refused += 1
    # The waits below count from the last connection made.
    t0_idle[0] = time.time()
    time.sleep(1)
    held = proc_figures(p.pid)
    probe = latency(target, 5, tls=ctx)
    after = {}
    for wait in (12, 65):
        time.sleep(max(0, wait - (time.time() - t0_idle[0])))
        after[f"open_after_{wait}s"] = sum(alive(s) for s in conns)
    for s in conns:
        s.close()
    time.sleep(1)
    report(label, connections=IDLE, refused_at_connect=refused, exporter_while_held=held,
           probe_while_held=probe, **after, exporter_after=proc_figures(p.pid))


t0_idle = [0.0]


def stalled(port):
    """The exporter's count of answers it cut for want of progress."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("collector_http_connections_closed_total{") and "stalled" in line:
                return float(line.rsplit(" ", 1)[1])
    return None


def phase_slow_reader(p, port):
    """Asks for /metrics and takes one byte a second, with a small receive buffer (set before
    connecting, so the window is small): once the kernel's buffers are full the exporter's
    writes stall, and it should cut the answer after --web.write-timeout."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(120)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    before = stalled(port) or 0
    fig0 = proc_figures(p.pid)
    t0 = time.time()
    read, cut = 0, None
    while time.time() - t0 < 120:
        s.recv(1)
        read += 1
        if (stalled(port) or 0) > before:
            cut = time.time() - t0
            break
        time.sleep(1)
    probe = latency(port, 3)
    s.close()
    report("slow_reader", bytes_read=read, cut_after_s=round(cut, 1) if cut else None,
           exporter_before=fig0, exporter_after=proc_figures(p.pid), probe_after=probe)


def tls_files(dir):
    key, crt = os.path.join(dir, "k.pem"), os.path.join(dir, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    web = os.path.join(dir, "web.yml")
    with open(web, "w") as f:
        f.write(f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n")
    ctx = ssl.create_default_context(cafile=crt)
    return web, ctx


def main():
    if os.geteuid() != 0:
        die("needs root (cgroups)")
    if not os.access(EXPORTER, os.X_OK):
        die(f"no exporter at {EXPORTER}: cargo build --release -p collector-exporter")
    make_cgroups(CONTAINERS)
    p, port, log = start_exporter()
    time.sleep(3)
    report("setup", containers=CONTAINERS, exporter=EXPORTER, gzip=GZIP,
           body_bytes=scrape(port)[1],
           **proc_figures(p.pid))
    report("baseline", probe=latency(port, 5), exporter=proc_figures(p.pid))
    only = os.environ.get("ONLY", "concurrent,idle,slow_reader,idle_tls").split(",")
    if "concurrent" in only:
        phase_concurrent(p, port)
    if "idle" in only:
        phase_idle(p, port)
    if "slow_reader" in only:
        phase_slow_reader(p, port)
    if "idle_tls" not in only:
        stop(p)
        return
    tmp = tempfile.mkdtemp()
    try:
        web, ctx = tls_files(tmp)
        tp, tport, _ = start_exporter([f"--web.config.file={web}"])
        time.sleep(2)
        phase_idle(tp, None, tls_port=tport, ctx=ctx)
        stop(tp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stop(p)


if __name__ == "__main__":
    try:
        main()
    finally:
        for proc in started:
            stop(proc)
        remove_cgroups()
