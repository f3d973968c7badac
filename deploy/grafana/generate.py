#!/usr/bin/env python3
"""Writes the Grafana dashboards in deploy/grafana/dashboards/ from the definitions below.

Run it after changing a query: `python3 deploy/grafana/generate.py`. The JSON it writes is what
Grafana provisions or imports and what tests/tests/dashboards.rs checks; both are committed, and
that test fails when they differ. `generate.py DIR` writes into DIR instead.
"""

import json
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards")
PROM = {"type": "prometheus", "uid": "${datasource}"}
INFLUX = {"type": "influxdb", "uid": "${datasource}"}

# Every container panel's selector: the template variables, and never the machine's own cgroup.
S = ('instance=~"$instance", namespace=~"$namespace", pod=~"$pod", '
     'container=~"$container", name=~"$name", id!="/"')
BY = "instance, namespace, pod, container, name, id"
LEGEND = "{{name}}{{namespace}}/{{pod}}/{{container}} {{id}}"
RI = "$__rate_interval"
FINDING_KINDS = ["miner_process", "miner_port_connection", "reverse_shell",
                 "exec_from_writable_layer", "fileless_exec", "new_listener",
                 "unexpected_process", "new_peer",
                 "unauthorized_connection"]


def datasource_var(kind):
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": kind, "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "options": [], "includeAll": False, "multi": False}


def query_var(name, label, query, ds=PROM, all_value=".*"):
    v = {"name": name, "label": label, "type": "query", "datasource": ds,
         "definition": query, "query": {"query": query, "refId": f"{name}-var"}
         if ds is PROM else query,
         "refresh": 2, "sort": 1, "hide": 0, "regex": "", "current": {},
         "options": [], "includeAll": True, "multi": True}
    if all_value is not None:
        v["allValue"] = all_value
    return v


def prom_vars(containers=True):
    vs = [datasource_var("prometheus"),
          query_var("instance", "Node", "label_values(machine_cpu_cores, instance)")]
    if containers:
        base = 'container_last_seen{instance=~"$instance"'
        vs += [
            query_var("namespace", "Namespace", f"label_values({base}}}, namespace)"),
            query_var("pod", "Pod",
                      f'label_values({base}, namespace=~"$namespace"}}, pod)'),
            query_var("container", "Container (Kubernetes)",
                      f'label_values({base}, namespace=~"$namespace", pod=~"$pod"}}, container)'),
            query_var("name", "Container name (runtime)",
                      f'label_values({base}, namespace=~"$namespace", pod=~"$pod"}}, name)'),
        ]
    return vs


class Board:
    def __init__(self, uid, title, tags, variables, description):
        self.uid, self.title, self.tags = uid, title, tags
        self.variables = variables
        self.description = description
        self.panels = []
        self.annotations = []
        self.y = 0
        self.x = 0
        self.next_id = 1
        self.ds = PROM

    def row(self, title):
        if self.x:
            self.y += 8
            self.x = 0
        self.panels.append({"type": "row", "title": title, "id": self.next_id,
                            "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.next_id += 1
        self.y += 1

    def panel(self, title, targets, unit="short", kind="timeseries", w=12, h=8,
              description="", stack=False, options=None, table=False):
        if self.x + w > 24:
            self.x = 0
            self.y += h
        ts = []
        for i, t in enumerate(targets):
            expr, legend = t[0], t[1]
            tgt = {"refId": chr(ord("A") + i), "datasource": self.ds}
            if self.ds is PROM:
                tgt.update({"expr": expr, "legendFormat": legend, "range": not table,
                            "instant": table, "editorMode": "code"})
                if table:
                    tgt["format"] = "table"
            else:
                tgt.update({"query": expr, "rawQuery": True, "resultFormat": "time_series",
                            "alias": legend})
            ts.append(tgt)
        p = {"id": self.next_id, "type": kind, "title": title, "description": description,
             "datasource": self.ds, "targets": ts,
             "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
             "fieldConfig": {"defaults": {"unit": unit, "custom": {}}, "overrides": []},
             "options": options or {}}
        if kind == "timeseries":
            p["fieldConfig"]["defaults"]["custom"] = {
                "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                "showPoints": "never", "spanNulls": False}
            p["options"] = options or {"legend": {"displayMode": "table", "placement": "bottom",
                                                  "calcs": ["mean", "max", "lastNotNull"]},
                                       "tooltip": {"mode": "multi", "sort": "desc"}}
        if table:
            p["transformations"] = [{"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True}}}]
        self.next_id += 1
        self.panels.append(p)
        self.x += w
        if self.x >= 24:
            self.x = 0
            self.y += h

    def annotation(self, name, color, expr, title, text, tags):
        self.annotations.append({
            "name": name, "enable": True, "hide": False, "iconColor": color,
            "datasource": PROM, "expr": expr, "step": "$__interval",
            "titleFormat": title, "textFormat": text, "tagKeys": tags,
            "useValueForTime": False,
            "target": {"refId": "Anno", "expr": expr, "datasource": PROM},
        })

    def json(self):
        builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                   "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                   "name": "Annotations & Alerts", "type": "dashboard"}
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["container-collector"] + self.tags, "timezone": "browser",
            "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
            "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
            "timepicker": {}, "fiscalYearStartMonth": 0, "liveNow": False,
            "links": [{"title": "container-collector", "type": "dashboards",
                       "tags": ["container-collector"], "asDropdown": True}],
            "annotations": {"list": [builtin] + self.annotations},
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def events_expr(match):
    sel = f'container_events_total{{instance=~"$instance", {match}}}'
    # A kind's counter appears at 1 with its first event, which increase() cannot see: the
    # series new in the window count too.
    return (f"sum by (instance, event, image) ((increase({sel}[$__interval]) > 0) "
            f"or ({sel} unless {sel} offset $__interval))")


def containers():
    b = Board("ccol-containers", "Containers", ["containers"], prom_vars(),
              "Per-container CPU, memory, network, disk IO, pressure, restarts and OOM kills "
              "from collector-exporter (cAdvisor names).")
    for name, color, match in [
            ("Container started", "green", 'event="started"'),
            ("Container stopped", "orange", 'event="stopped"'),
            ("OOM kill", "red", 'event="oom_kill"'),
            ("Policy violation", "purple", 'event="policy_violation"'),
            ("Security finding", "dark-red", f'event=~"{"|".join(FINDING_KINDS)}"')]:
        b.annotation(name, color, events_expr(match), "{{event}}",
                     "{{image}} on {{instance}}", "event,image,instance")
    b.row("CPU")
    b.panel("CPU usage", [(
        f"sum by ({BY}) (rate(container_cpu_usage_seconds_total{{{S}}}[{RI}]))", LEGEND)],
        unit="short", description="CPU time used, in cores (1 = one CPU busy).")
    b.panel("CPU usage against quota", [(
        f"sum by ({BY}) (rate(container_cpu_usage_seconds_total{{{S}}}[{RI}])) / "
        f"sum by ({BY}) (container_spec_cpu_quota{{{S}}} / container_spec_cpu_period{{{S}}})",
        LEGEND)], unit="percentunit",
        description="Usage as a share of the CFS quota (quota / period); containers without "
                    "a quota have no line.")
    b.panel("Throttled periods", [(
        f"sum by ({BY}) (rate(container_cpu_cfs_throttled_periods_total{{{S}}}[{RI}])) / "
        f"sum by ({BY}) (rate(container_cpu_cfs_periods_total{{{S}}}[{RI}]))", LEGEND)],
        unit="percentunit", description="Share of CFS periods in which the container was "
                                        "throttled (only with a quota).")
    b.panel("Throttled time", [(
        f"sum by ({BY}) (rate(container_cpu_cfs_throttled_seconds_total{{{S}}}[{RI}]))",
        LEGEND)], unit="s", description="Seconds throttled per second.")
    b.row("Memory")
    b.panel("Memory working set", [(
        f"sum by ({BY}) (container_memory_working_set_bytes{{{S}}})", LEGEND)], unit="bytes")
    b.panel("Memory working set against limit", [(
        f"sum by ({BY}) (container_memory_working_set_bytes{{{S}}}) / "
        f"sum by ({BY}) (container_spec_memory_limit_bytes{{{S}}})", LEGEND)],
        unit="percentunit", description="Only containers with a memory limit (the limit "
                                         "series is absent when unlimited).")
    b.panel("RSS and page cache", [
        (f"sum by ({BY}) (container_memory_rss{{{S}}})", "rss " + LEGEND),
        (f"sum by ({BY}) (container_memory_cache{{{S}}})", "cache " + LEGEND)], unit="bytes")
    b.panel("OOM kills", [(
        f"sum by ({BY}) (increase(container_oom_events_total{{{S}}}[{RI}]))", LEGEND)],
        unit="short", kind="timeseries")
    b.row("Network")
    b.panel("Network received per interface", [(
        f"sum by ({BY}, interface) (rate(container_network_receive_bytes_total{{{S}}}[{RI}]))",
        LEGEND + " {{interface}}")], unit="Bps",
        description="Containers in the host's network namespace have no interface series.")
    b.panel("Network transmitted per interface", [(
        f"sum by ({BY}, interface) (rate(container_network_transmit_bytes_total{{{S}}}[{RI}]))",
        LEGEND + " {{interface}}")], unit="Bps")
    b.panel("Network drops and errors", [
        (f"sum by ({BY}, interface) (rate(container_network_receive_packets_dropped_total{{{S}}}[{RI}]) "
         f"+ rate(container_network_transmit_packets_dropped_total{{{S}}}[{RI}]))",
         "dropped " + LEGEND + " {{interface}}"),
        (f"sum by ({BY}, interface) (rate(container_network_receive_errors_total{{{S}}}[{RI}]) "
         f"+ rate(container_network_transmit_errors_total{{{S}}}[{RI}]))",
         "errors " + LEGEND + " {{interface}}")], unit="pps")
    b.panel("Network packets", [
        (f"sum by ({BY}, interface) (rate(container_network_receive_packets_total{{{S}}}[{RI}]))",
         "rx " + LEGEND + " {{interface}}"),
        (f"sum by ({BY}, interface) (rate(container_network_transmit_packets_total{{{S}}}[{RI}]))",
         "tx " + LEGEND + " {{interface}}")], unit="pps")
    b.row("Disk IO")
    b.panel("Disk throughput", [
        (f"sum by ({BY}, device) (rate(container_fs_reads_bytes_total{{{S}}}[{RI}]))",
         "read " + LEGEND + " {{device}}"),
        (f"sum by ({BY}, device) (rate(container_fs_writes_bytes_total{{{S}}}[{RI}]))",
         "write " + LEGEND + " {{device}}")], unit="Bps",
        description="On cgroup v1 the kernel counts IO only on devices with a throttle rule "
                    "in the container's blkio cgroup.")
    b.panel("Disk operations", [
        (f"sum by ({BY}, device) (rate(container_fs_reads_total{{{S}}}[{RI}]))",
         "read " + LEGEND + " {{device}}"),
        (f"sum by ({BY}, device) (rate(container_fs_writes_total{{{S}}}[{RI}]))",
         "write " + LEGEND + " {{device}}")], unit="iops")
    b.row("Pressure, tasks and restarts")
    b.panel("Pressure: some task waiting", [
        (f"sum by ({BY}) (rate(container_pressure_{r}_waiting_seconds_total{{{S}}}[{RI}]))",
         f"{r} " + LEGEND) for r in ("cpu", "memory", "io")], unit="percentunit",
        description="Share of time some task of the container waited for the resource (PSI "
                    "\"some\").")
    b.panel("Pressure: all tasks stalled", [
        (f"sum by ({BY}) (rate(container_pressure_{r}_stalled_seconds_total{{{S}}}[{RI}]))",
         f"{r} " + LEGEND) for r in ("cpu", "memory", "io")], unit="percentunit",
        description="PSI \"full\": share of time every task of the container was stalled.")
    b.panel("Processes and threads", [
        (f"sum by ({BY}) (container_processes{{{S}}})", "processes " + LEGEND),
        (f"sum by ({BY}) (container_threads{{{S}}})", "threads " + LEGEND)], unit="short")
    b.panel("Restarts (last hour)", [(
        "changes((max by (instance, namespace, pod, container, name) "
        f"(container_start_time_seconds{{{S}}}))[1h:1m])",
        "{{name}}{{namespace}}/{{pod}}/{{container}}")], unit="short",
        description="Times a container of this name got a new cgroup (a new start time) in "
                    "the hour before each point. Raw cgroups without names are one line.")
    return b


def node():
    b = Board("ccol-node", "Node", ["node"], prom_vars(containers=False),
              "The machine as collector-exporter sees it: CPU by mode, disks, filesystems, "
              "pressure and container counts.")
    I = 'instance=~"$instance"'
    cores = f"on (instance) group_left sum by (instance) (machine_cpu_cores{{{I}}})"
    b.row("CPU and memory")
    b.panel("CPU by mode", [(
        f"sum by (instance, mode) (rate(machine_cpu_seconds_total{{{I}, mode!=\"idle\"}}[{RI}])) / {cores}",
        "{{instance}} {{mode}}")], unit="percentunit", stack=True,
        description="Share of all CPUs in each mode (idle left out).")
    b.panel("I/O wait", [(
        f"sum by (instance) (rate(machine_cpu_seconds_total{{{I}, mode=\"iowait\"}}[{RI}])) / {cores}",
        "{{instance}}")], unit="percentunit")
    b.panel("Memory in use (working set of /)", [
        (f"sum by (instance) (container_memory_working_set_bytes{{{I}, id=\"/\"}})",
         "{{instance}} working set"),
        (f"sum by (instance) (machine_memory_bytes{{{I}}})", "{{instance}} total")],
        unit="bytes")
    b.panel("Containers", [
        (f"sum by (instance) (collector_containers{{{I}}})", "{{instance}} followed"),
        (f"sum by (instance) (collector_containers_idle{{{I}}})", "{{instance}} idle"),
        (f"count by (instance) (container_last_seen{{{I}, id!=\"/\", image!=\"\"}})",
         "{{instance}} with an image")], unit="short",
        description="Cgroups the collector follows, those read as idle in the last sweep, and "
                    "those a runtime named with an image.")
    b.row("Filesystems")
    fs = f'{I}'
    b.panel("Disk space used", [(
        f"1 - machine_filesystem_avail_bytes{{{fs}}} / machine_filesystem_size_bytes{{{fs}}}",
        "{{instance}} {{mountpoint}} ({{device}})")], unit="percentunit")
    b.panel("Disk space available, and in 24 h at the last 6 h's trend", [
        (f"machine_filesystem_avail_bytes{{{fs}}}", "{{instance}} {{mountpoint}}"),
        (f"predict_linear(machine_filesystem_avail_bytes{{{fs}}}[6h], 24 * 3600)",
         "{{instance}} {{mountpoint}} forecast +24h")], unit="bytes",
        description="predict_linear over the last 6 hours; below 0 means full within a day.")
    b.panel("Inodes used", [(
        f"1 - machine_filesystem_files_free{{{fs}}} / machine_filesystem_files{{{fs}}}",
        "{{instance}} {{mountpoint}}")], unit="percentunit")
    b.row("Disks")
    b.panel("Disk throughput", [
        (f"rate(machine_disk_read_bytes_total{{{I}}}[{RI}])", "{{instance}} {{device}} read"),
        (f"rate(machine_disk_written_bytes_total{{{I}}}[{RI}])",
         "{{instance}} {{device}} written")], unit="Bps")
    b.panel("Disk operations", [
        (f"rate(machine_disk_reads_completed_total{{{I}}}[{RI}])", "{{instance}} {{device}} reads"),
        (f"rate(machine_disk_writes_completed_total{{{I}}}[{RI}])",
         "{{instance}} {{device}} writes")], unit="iops")
    b.panel("Disk busy time", [(
        f"rate(machine_disk_io_time_seconds_total{{{I}}}[{RI}])", "{{instance}} {{device}}")],
        unit="percentunit")
    b.panel("IOs in flight", [(f"machine_disk_io_now{{{I}}}", "{{instance}} {{device}}")],
            unit="short")
    b.row("Pressure")
    b.panel("Pressure: some task waiting", [
        (f"rate(machine_pressure_{r}_waiting_seconds_total{{{I}}}[{RI}])", "{{instance}} " + r)
        for r in ("cpu", "memory", "io")], unit="percentunit")
    b.panel("Pressure: all tasks stalled", [
        (f"rate(machine_pressure_{r}_stalled_seconds_total{{{I}}}[{RI}])", "{{instance}} " + r)
        for r in ("memory", "io")], unit="percentunit",
        description="The kernel reports no machine-wide \"full\" figure for CPU.")
    return b


def security():
    b = Board("ccol-security", "Container security", ["security"], prom_vars(),
              "Security findings, processes started, listeners, egress against its baseline "
              "and policy violations from collector-exporter's security signals.")
    b.annotation("Security finding", "dark-red",
                 events_expr(f'event=~"{"|".join(FINDING_KINDS)}"'), "{{event}}",
                 "{{image}} on {{instance}}", "event,image,instance")
    b.annotation("Policy violation", "purple", events_expr('event="policy_violation"'),
                 "{{event}}", "{{image}} on {{instance}}", "event,image,instance")
    b.row("Findings")
    b.panel("New findings by kind", [(
        f"sum by (kind) (increase(container_security_findings_total{{{S}}}[{RI}]))", "{{kind}}")],
        unit="short", stack=True,
        description="Distinct findings (per container, kind and key) counted in each interval.")
    b.panel("Findings so far by kind", [(
        f"sum by (kind) (container_security_findings_total{{{S}}})", "{{kind}}")],
        unit="short", kind="bargauge",
        options={"orientation": "horizontal", "displayMode": "basic",
                 "reduceOptions": {"calcs": ["lastNotNull"], "values": False}})
    b.panel("Findings per container", [(
        f"sum by ({BY}, image, kind) (container_security_findings_total{{{S}}}) > 0",
        "")], kind="table", table=True, w=24,
        description="Each container's findings by kind, counted since the collector began "
                    "following it. The process, executable and addresses of each are in "
                    "/api/v1/events and the sinks' finding events.")
    b.panel("Finding events by kind", [(
        events_expr(f'event=~"{"|".join(FINDING_KINDS)}"'), "{{event}} {{image}}")],
        unit="short", kind="timeseries",
        description="container_events_total: events made of findings, by runtime and image.")
    b.panel("Processes started", [(
        f"sum by ({BY}) (rate(container_processes_started_total{{{S}}}[{RI}]))", LEGEND)],
        unit="short", description="Execs per second in each container (and pids a walk "
                                  "found that no exec announced).")
    b.row("Network")
    b.panel("TCP listeners", [
        (f"sum by ({BY}) (container_network_tcp_usage_total{{{S}, tcp_state=\"listen\"}})",
         "tcp " + LEGEND),
        (f"sum by ({BY}) (container_network_tcp6_usage_total{{{S}, tcp_state=\"listen\"}})",
         "tcp6 " + LEGEND)], unit="short",
        description="Needs --containers.socket-states (off by default) and a container with "
                    "its own network namespace.")
    b.panel("Egress against its 1-day baseline", [
        (f"sum by ({BY}) (rate(container_network_transmit_bytes_total{{{S}}}[{RI}])) / "
         f"sum by ({BY}) (rate(container_network_transmit_bytes_total{{{S}}}[1d]))", LEGEND)],
        unit="short",
        description="Bytes sent per second now, divided by the container's average over the "
                    "last day: 1 is usual, 10 is ten times its usual egress.")
    b.panel("Egress and its baseline", [
        (f"sum by ({BY}) (rate(container_network_transmit_bytes_total{{{S}}}[{RI}]))",
         LEGEND),
        (f"sum by ({BY}) (rate(container_network_transmit_bytes_total{{{S}}}[1d]))",
         "1-day average " + LEGEND)], unit="Bps")
    b.row("Policy")
    b.panel("Policy violations", [(
        'container_policy_violation{instance=~"$instance", name=~"$name"}', "")],
        kind="table", table=True, w=24,
        description="Running containers outside the policy file's allowed images and names "
                    "(--containers.policy-file), with the reason.")
    return b


def collector():
    b = Board("ccol-collector", "Collector", ["collector"], prom_vars(containers=False),
              "collector-exporter's own health: sweeps, errors, sinks, descriptors and the "
              "security signals' exec watch.")
    I = 'instance=~"$instance"'
    b.row("Sweeps")
    b.panel("Sweep duration", [(f"collector_sweep_duration_seconds{{{I}}}", "{{instance}}")],
            unit="s")
    b.panel("Sweeps and read errors", [
        (f"rate(collector_sweeps_total{{{I}}}[{RI}])", "{{instance}} sweeps"),
        (f"rate(collector_sweep_errors_total{{{I}}}[{RI}])", "{{instance}} errors")],
        unit="ops", description="Errors are files that could not be read or parsed.")
    b.panel("Containers followed", [
        (f"collector_containers{{{I}}}", "{{instance}} followed"),
        (f"collector_containers_idle{{{I}}}", "{{instance}} idle")], unit="short")
    b.panel("Held descriptors", [
        (f"collector_held_descriptors{{{I}}}", "{{instance}} held on cgroups and processes"),
        (f"process_open_fds{{{I}}}", "{{instance}} open"),
        (f"process_max_fds{{{I}}}", "{{instance}} limit")], unit="short")
    b.panel("Exporter CPU", [(f"rate(process_cpu_seconds_total{{{I}}}[{RI}])", "{{instance}}")],
            unit="percentunit")
    b.panel("Exporter memory", [(f"process_resident_memory_bytes{{{I}}}", "{{instance}}")],
            unit="bytes")
    b.panel("Inotify watch limit reached", [
        (f"collector_inotify_watch_limit_reached{{{I}}}", "{{instance}}")], unit="short",
        description="1: new cgroups are found by the periodic rescan only.")
    b.row("Sinks")
    b.panel("Sink queues", [
        (f"collector_sink_queue_items{{{I}}}", "{{instance}} {{sink}} queued"),
        (f"collector_sink_spool_bytes{{{I}}}", "{{instance}} {{sink}} spool bytes")],
        unit="short")
    b.panel("Sink deliveries, failures, retries and drops", [
        (f"rate(collector_sink_{c}_total{{{I}}}[{RI}])", "{{instance}} {{sink}} " + c)
        for c in ("sent", "failed", "retries", "dropped")], unit="ops")
    b.panel("Time since a sink's last delivery", [(
        f"(time() - collector_sink_last_success_timestamp_seconds{{{I}}}) "
        f"and collector_sink_last_success_timestamp_seconds{{{I}}} > 0",
        "{{instance}} {{sink}}")], unit="s")
    b.row("Security exec watch")
    b.panel("Exec source", [(
        f"collector_security_exec_source{{{I}}} == 1", "{{instance}} {{source}}")],
        kind="table", table=True,
        description="process_events: every exec as it happens; polling: walks on the process "
                    "interval only; off.")
    b.panel("Execs", [
        (f"rate(collector_security_{c}_total{{{I}}}[{RI}])", "{{instance}} " + c)
        for c in ("execs", "execs_examined", "execs_rate_limited", "execs_gone",
                  "execs_dropped")], unit="ops")
    b.panel("Exec watch losses", [
        (f"increase(collector_security_event_overruns_total{{{I}}}[{RI}])",
         "{{instance}} kernel queue overruns"),
        (f"increase(collector_security_findings_unreported_total{{{I}}}[{RI}])",
         "{{instance}} findings not made events")], unit="short")
    return b


def influx():
    b = Board("ccol-influxdb-containers", "Containers (InfluxDB)", ["containers", "influxdb"],
              [], "Per-container figures from the InfluxDB sink's measurements (InfluxQL), for "
                  "those who push instead of scrape.")
    b.ds = INFLUX
    b.variables = [datasource_var("influxdb")] + [
        query_var(n, l, f'SHOW TAG VALUES FROM "container_cpu" WITH KEY = "{n}"',
                  ds=INFLUX)
        for n, l in [("host", "Host"), ("namespace", "Namespace"), ("pod", "Pod"),
                     ("name", "Container name")]]
    # All is ".*", which also matches a point without the tag (no Kubernetes, no runtime name).
    W = ('"host" =~ /^$host$/ AND "namespace" =~ /^$namespace$/ AND "pod" =~ /^$pod$/ AND '
         '"name" =~ /^$name$/ AND $timeFilter')

    def group(extra=""):
        # fill() ends the clause: extra tags go before it, or InfluxDB rejects the query.
        return f'GROUP BY time($__interval), "id", "name"{extra} fill(none)'

    G = group()

    def rate(m, f, extra_group=""):
        return (f'SELECT non_negative_derivative(mean("{f}"), 1s) FROM "{m}" WHERE {W} '
                f'{group(extra_group)}')

    def gauge(m, f, extra_group=""):
        return f'SELECT mean("{f}") FROM "{m}" WHERE {W} {group(extra_group)}'

    A = "$tag_name $tag_id"
    b.row("CPU and memory")
    b.panel("CPU usage", [(rate("container_cpu", "usage_seconds"), A)], unit="short")
    b.panel("CPU usage against quota", [(
        'SELECT non_negative_derivative(mean("usage_seconds"), 1s) / '
        '(last("quota_us") / last("period_us")) FROM "container_cpu" WHERE ' + W + " " + G, A)],
        unit="percentunit")
    b.panel("Throttled time", [(rate("container_cpu", "throttled_seconds"), A)], unit="s")
    b.panel("Memory working set", [(gauge("container_memory", "working_set_bytes"), A)],
            unit="bytes")
    b.panel("Memory working set against limit", [(
        'SELECT mean("working_set_bytes") / last("limit_bytes") FROM "container_memory" '
        'WHERE ' + W + " " + G, A)], unit="percentunit")
    b.panel("OOM kills", [(
        f'SELECT non_negative_difference(max("oom_kills")) FROM "container_memory" WHERE {W} {G}',
        A)], unit="short")
    b.row("Network and disk")
    b.panel("Network received", [(rate("container_network", "rx_bytes", ', "interface"'),
                                   A + " $tag_interface")], unit="Bps")
    b.panel("Network transmitted", [(rate("container_network", "tx_bytes", ', "interface"'),
                                      A + " $tag_interface")], unit="Bps")
    b.panel("Disk read", [(rate("container_blkio", "read_bytes", ', "device"'),
                           A + " $tag_device")], unit="Bps")
    b.panel("Disk written", [(rate("container_blkio", "write_bytes", ', "device"'),
                              A + " $tag_device")], unit="Bps")
    b.row("Pressure, tasks and security")
    b.panel("Pressure (some, avg10)", [
        (gauge("container_pressure", f"{r}_some_avg10"), f"{r} " + A)
        for r in ("cpu", "memory", "io")], unit="percent")
    b.panel("Processes and threads", [
        (gauge("container_tasks", "processes"), "processes " + A),
        (gauge("container_tasks", "threads"), "threads " + A)], unit="short")
    b.panel("Findings so far by kind", [
        (f'SELECT max("{k}") FROM "container_security_findings" WHERE {W} {G}', f"{k} " + A)
        for k in FINDING_KINDS], unit="short")
    b.panel("Events", [(
        'SELECT sum("count") FROM "container_events" WHERE "host" =~ /^$host$/ AND $timeFilter '
        'GROUP BY time($__interval), "event" fill(none)', "$tag_event")],
        unit="short", kind="timeseries")
    return b


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(out, exist_ok=True)
    for f, b in [("containers.json", containers()), ("node.json", node()),
                 ("security.json", security()), ("collector.json", collector()),
                 ("influxdb-containers.json", influx())]:
        with open(os.path.join(out, f), "w") as fh:
            json.dump(b.json(), fh, indent=2)
            fh.write("\n")


if __name__ == "__main__":
    main()
