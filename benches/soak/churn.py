#!/usr/bin/env python3
"""Churn soak: STABLE containers stay while RATE a minute are created and destroyed for
DURATION seconds, each a cgroup with a process in its own network namespace; the exporter
sweeps every INTERVAL, is scraped every second and pushes to a real InfluxDB. Prints one JSON
line of figures (and a readable summary on stderr):

- sweep errors (vanished cgroups are not errors: must be 0);
- started and stopped events against the truth (every churned container lives at least
  MIN_LIFE seconds, several sweeps, so none may be missed and none invented);
- RSS after warm-up and at the end of the churn, open descriptors, threads, inotify watches,
  held descriptors and the kernel's slab before the churn and once it has stopped;
- scrape latency, the sink's delivered and dropped items.

    benches/soak/churn.py                                   # 1,000 stay, 1,000/min, 10 min
    STABLE=50 RATE=600 DURATION=30 WARMUP=5 benches/soak/churn.py   # the test suite's run

Needs root, `unshare` and `influxd` (scripts/test.sh installs them). EXPORTER defaults to
target/release/collector-exporter. Stops what it started, by pid, and removes its cgroups on
any exit.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soaklib import free_port, hierarchies, proc_figures, remove_cgroup, stop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXPORTER = os.environ.get("EXPORTER", os.path.join(REPO, "target/release/collector-exporter"))
STABLE = int(os.environ.get("STABLE", "1000"))
RATE = int(os.environ.get("RATE", "1000"))
DURATION = float(os.environ.get("DURATION", "600"))
WARMUP = float(os.environ.get("WARMUP", "60"))
INTERVAL = os.environ.get("INTERVAL", "1s")
MIN_LIFE, MAX_LIFE = float(os.environ.get("MIN_LIFE", "4")), float(os.environ.get("MAX_LIFE", "30"))
SETTLE = float(os.environ.get("SETTLE", "20"))
PARENT = f"ccol-churn-{os.getpid()}"

procs = []  # every process started, for the cleanup
lock = threading.Lock()


def log(msg):
    print(f"churn.py: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)




HIERS = []




class Container:
    """A cgroup in every hierarchy with one process in its own network namespace."""

    def __init__(self, name):
        self.name = name
        self.born = time.time()
        self.died = None
        self.dirs = [os.path.join(h, PARENT, name) for h in HIERS]
        for d in self.dirs:
            os.mkdir(d)
        dirs = self.dirs

        def join():
            pid = str(os.getpid())
            for d in dirs:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(pid)

        self.proc = subprocess.Popen(["unshare", "-n", "sleep", "100000"], preexec_fn=join,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with lock:
            procs.append(self.proc)

    def destroy(self):
        self.died = time.time()
        self.proc.kill()
        self.proc.wait()
        for d in self.dirs:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                log(f"could not remove {d}")


def start_influxd(tmp):
    http, rpc = free_port(), free_port()
    conf = os.path.join(tmp, "influxdb.conf")
    with open(conf, "w") as f:
        f.write(f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
                f'[meta]\n  dir = "{tmp}/meta"\n[data]\n  dir = "{tmp}/data"\n'
                f'  wal-dir = "{tmp}/wal"\n[http]\n  bind-address = "127.0.0.1:{http}"\n'
                f'  log-enabled = false\n[monitor]\n  store-enabled = false\n')
    p = subprocess.Popen(["influxd", "-config", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    procs.append(p)
    url = f"http://127.0.0.1:{http}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/ping", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        die("influxd did not answer")
    q = urllib.parse.urlencode({"q": "CREATE DATABASE churn"}).encode()
    urllib.request.urlopen(url + "/query", data=q, timeout=10)
    return url


def start_exporter(tmp, influx):
    port = free_port()
    conf = os.path.join(tmp, "exporter.toml")
    with open(conf, "w") as f:
        f.write(f'[[sinks]]\ntype = "influxdb"\nurl = "{influx}"\ndatabase = "churn"\n'
                f'interval = "{INTERVAL}"\n')
    args = [EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
            f"--housekeeping.interval={INTERVAL}", f"--cgroups.include=/{PARENT}",
            f"--config.file={conf}"]
    logf = open(os.path.join(tmp, "exporter.log"), "w")
    p = subprocess.Popen(args, stdout=logf, stderr=logf)
    procs.append(p)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return p, port
        except OSError:
            if p.poll() is not None:
                die(f"the exporter exited; see {logf.name}")
            time.sleep(0.1)
    die("the exporter did not listen")


def scrape(port):
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        body = r.read().decode()
    return time.perf_counter() - t0, body


def series(body, name, match=""):
    total, found = 0.0, False
    for line in body.splitlines():
        if line.startswith(name) and line[len(name)] in " {" and match in line:
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None




def event_ids(influx, event):
    """The cgroup ids InfluxDB holds `event` points of (the sink pushes every event)."""
    q = urllib.parse.urlencode({"db": "churn", "q": 'SHOW TAG VALUES FROM "container_events" '
                                f'WITH KEY = "id" WHERE "event" = \'{event}\''})
    with urllib.request.urlopen(f"{influx}/query?{q}", timeout=60) as r:
        answer = json.load(r)
    series = answer.get("results", [{}])[0].get("series", [])
    return {v[1] for s in series for v in s.get("values", [])}


def missed(churned, seen, start):
    """The churned containers with no such event: id, when made and how long they lived."""
    out = []
    for c in churned:
        if f"/{PARENT}/{c.name}" not in seen:
            out.append({"id": c.name, "made_at_s": round(c.born - start, 1),
                        "lived_s": round((c.died or time.time()) - c.born, 1)})
    return out


def slab_kb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return 0


def state(pid, port):
    _, body = scrape(port)
    return {**proc_figures(pid), "slab_mb": round(slab_kb() / 1024, 1),
            "containers": series(body, "collector_containers"),
            "held_descriptors": series(body, "collector_held_descriptors"),
            "inotify_watches": series(body, "collector_inotify_watches"),
            "sweep_errors": series(body, "collector_sweep_errors_total"),
            "started": series(body, "container_events_total", 'event="started"') or 0,
            "stopped": series(body, "container_events_total", 'event="stopped"') or 0,
            "sink_sent": series(body, "collector_sink_sent_total"),
            "sink_dropped": series(body, "collector_sink_dropped_total"),
            "sink_failed": series(body, "collector_sink_failed_total"),
            "sweep_s": series(body, "collector_sweep_duration_seconds")}


def main():
    if os.geteuid() != 0:
        die("needs root (cgroups, network namespaces)")
    for tool in ("unshare", "influxd"):
        if not shutil.which(tool):
            die(f"needs {tool}: run scripts/test.sh once, or apt-get install util-linux influxdb")
    if not os.access(EXPORTER, os.X_OK):
        die(f"no exporter at {EXPORTER}: cargo build --release -p collector-exporter")
    HIERS.extend(hierarchies())
    for h in HIERS:
        os.mkdir(os.path.join(h, PARENT))
    tmp = tempfile.mkdtemp(prefix="ccol-churn-")
    stable = [Container(f"s{i}") for i in range(STABLE)]
    influx = start_influxd(tmp)
    exp, port = start_exporter(tmp, influx)
    time.sleep(5)
    before = state(exp.pid, port)
    log(f"before the churn: {before}")

    latencies = []
    scraping = threading.Event()
    scraping.set()

    def scraper():
        while scraping.is_set():
            try:
                latencies.append(scrape(port)[0])
            except Exception as e:
                log(f"scrape failed: {e}")
                latencies.append(None)
            time.sleep(1)

    threading.Thread(target=scraper, daemon=True).start()

    created = destroyed = 0
    churned = []
    alive = []  # (dies_at, container)
    start = time.time()
    warm = None
    seq = 0
    while time.time() - start < DURATION:
        now = time.time()
        if warm is None and now - start >= WARMUP:
            warm = state(exp.pid, port)
            log(f"after warm-up: {warm}")
        # Destroy what is due, then create this tick's share.
        due = [c for t, c in alive if t <= now]
        alive = [(t, c) for t, c in alive if t > now]
        for c in due:
            c.destroy()
            destroyed += 1
        for _ in range(max(1, round(RATE / 60 / 10))):
            c = Container(f"c{seq}")
            churned.append(c)
            seq += 1
            created += 1
            alive.append((now + random.uniform(MIN_LIFE, MAX_LIFE), c))
        time.sleep(max(0.0, 0.1 - (time.time() - now)))
    end_churn = state(exp.pid, port)
    # The last ones live out their lives too: one made in the last tick and destroyed at
    # once would be seen by no sweep, which is no miss.
    while alive:
        now = time.time()
        for _, c in [(t, c) for t, c in alive if t <= now]:
            c.destroy()
            destroyed += 1
        alive = [(t, c) for t, c in alive if t > now]
        time.sleep(0.1)
    time.sleep(SETTLE)
    after = state(exp.pid, port)
    scraping.clear()
    time.sleep(1.5)
    ok = [l for l in latencies if l is not None]
    ok.sort()
    pick = lambda q: round(ok[min(len(ok) - 1, int(q * len(ok)))] * 1000, 1) if ok else None
    warm = warm or before
    missed_starts = missed(churned, event_ids(influx, "started"), start)
    missed_stops = missed(churned, event_ids(influx, "stopped"), start)
    figures = {
        "stable": STABLE, "rate_per_min": RATE, "duration_s": DURATION, "interval": INTERVAL,
        "created": created, "destroyed": destroyed,
        "started_events": after["started"] - before["started"],
        "stopped_events": after["stopped"] - before["stopped"],
        "sweep_errors": (after["sweep_errors"] or 0) - (before["sweep_errors"] or 0),
        "rss_mb": {"before": before["rss_mb"], "after_warmup": warm["rss_mb"],
                   "end_of_churn": end_churn["rss_mb"], "settled": after["rss_mb"]},
        "fds": {"before": before["fds"], "settled": after["fds"]},
        "threads": {"before": before["threads"], "end_of_churn": end_churn["threads"],
                    "settled": after["threads"]},
        "held_descriptors": {"before": before["held_descriptors"],
                             "settled": after["held_descriptors"]},
        "inotify_watches": {"before": before["inotify_watches"],
                            "settled": after["inotify_watches"]},
        "containers": {"before": before["containers"], "settled": after["containers"]},
        "slab_mb": {"before": before["slab_mb"], "settled": after["slab_mb"]},
        "sweep_s_end_of_churn": end_churn["sweep_s"],
        "scrapes": len(latencies), "scrapes_failed": len(latencies) - len(ok),
        "scrape_ms": {"p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)},
        "sink": {"sent": after["sink_sent"], "dropped": after["sink_dropped"],
                 "failed": after["sink_failed"]},
        # From InfluxDB's events: which containers had no start or stop, for a look.
        "missed_starts": missed_starts[:20], "missed_stops": missed_stops[:20],
    }
    stop(exp)
    print(json.dumps(figures), flush=True)
    for c in stable:
        c.destroy()
    shutil.rmtree(tmp, ignore_errors=True)




def cleanup():
    with lock:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for h in HIERS:
        remove_cgroup(os.path.join(h, PARENT))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        main()
    finally:
        cleanup()
