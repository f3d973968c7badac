//! Snapshot -> points, one measurement per object with many fields (Telegraf's shape):
//! `container_cpu`, `container_memory`, `container_tasks`, `container_pressure`,
//! `container_network` (per interface), `container_blkio` (per device), `machine`, and
//! `container_events` for lifecycle events and security findings (with the process and the
//! endpoints a finding concerns as fields). See docs/METRICS.md.

use std::collections::HashMap;

use super::line::{write_point, Field};
use crate::collector::{Container, Snapshot};
use crate::events::Event;
use crate::stats::NetworkStatus;

/// Appends one item (a line) per point.
pub fn encode(snap: &Snapshot, host: &str, unsigned: bool, metrics: bool, out: &mut Vec<Vec<u8>>) {
    let ts = (snap.timestamp_ms as i64).saturating_mul(1_000_000);
    let mut line = Vec::with_capacity(512);
    if metrics {
        let mut emit = |m: &str, tags: &mut [(&str, &str)], fields: &[(&str, Field)]| {
            push_point(&mut line, out, m, tags, fields, ts, unsigned);
        };
        for c in &snap.containers {
            container_points(c, host, &mut emit);
        }
        machine_points(snap, host, &mut emit);
    }
    // Points of one series at one time are one point to InfluxDB (the last write wins), and
    // one container can have several findings of a kind in a sweep (two programs, two
    // connections): each after the first of its series is a nanosecond later.
    let mut nth: HashMap<(&str, &str), i64> = HashMap::new();
    for e in &snap.events {
        let n = nth.entry((e.id.as_str(), e.kind.name())).or_insert(0);
        let at = ts.saturating_add(*n);
        *n += 1;
        event_point(e, host, &mut |m, tags, fields| {
            push_point(&mut line, out, m, tags, fields, at, unsigned);
        });
    }
}

/// Writes one point as an item (a line without its newline; the sink joins them).
fn push_point(
    line: &mut Vec<u8>,
    out: &mut Vec<Vec<u8>>,
    m: &str,
    tags: &mut [(&str, &str)],
    fields: &[(&str, Field)],
    ts: i64,
    unsigned: bool,
) {
    line.clear();
    if write_point(line, m, tags, fields, ts, unsigned) {
        line.pop();
        out.push(line.clone());
    }
}

fn u(v: Option<u64>) -> Option<Field<'static>> {
    v.map(Field::U64)
}

fn secs(ns: Option<u64>) -> Option<Field<'static>> {
    ns.map(|v| Field::F64(v as f64 / 1e9))
}

fn collect<'a>(pairs: &[(&'a str, Option<Field<'a>>)]) -> Vec<(&'a str, Field<'a>)> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect()
}

fn container_points(
    c: &Container,
    host: &str,
    emit: &mut impl FnMut(&str, &mut [(&str, &str)], &[(&str, Field)]),
) {
    let s = &c.stats;
    let m = &c.meta;
    let cid = c.identity.container_id.as_deref().unwrap_or(&c.id);
    let runtime = c.identity.runtime.map(|r| r.name()).unwrap_or("");
    let base: [(&str, &str); 9] = [
        ("host", host),
        ("id", &c.id),
        ("container_id", cid),
        ("name", m.name.as_deref().unwrap_or("")),
        ("image", m.image.as_deref().unwrap_or("")),
        ("runtime", runtime),
        ("namespace", m.namespace.as_deref().unwrap_or("")),
        ("pod", m.pod.as_deref().unwrap_or("")),
        ("container", m.container.as_deref().unwrap_or("")),
    ];

    let cpu = collect(&[
        ("usage_seconds", secs(s.cpu.usage_ns)),
        ("user_seconds", secs(s.cpu.user_ns)),
        ("system_seconds", secs(s.cpu.system_ns)),
        ("periods", u(s.cpu.nr_periods)),
        ("throttled_periods", u(s.cpu.nr_throttled)),
        ("throttled_seconds", secs(s.cpu.throttled_ns)),
        (
            "load_average_10s",
            s.load.map(|l| Field::F64(l.load_average_10s)),
        ),
        ("shares", u(s.spec.cpu_shares)),
        ("quota_us", u(s.spec.cpu_quota_us)),
        ("period_us", u(s.spec.cpu_period_us)),
    ]);
    emit("container_cpu", &mut base.clone(), &cpu);

    let mm = &s.memory;
    let mem = collect(&[
        ("usage_bytes", u(mm.usage_bytes)),
        ("working_set_bytes", u(mm.working_set_bytes)),
        ("rss_bytes", u(mm.rss_bytes)),
        ("cache_bytes", u(mm.cache_bytes)),
        ("swap_bytes", u(mm.swap_bytes)),
        ("mapped_file_bytes", u(mm.mapped_file_bytes)),
        ("kernel_bytes", u(mm.kernel_bytes)),
        ("max_usage_bytes", u(mm.max_usage_bytes)),
        ("failcnt", u(mm.failcnt)),
        ("pgfault", u(mm.pgfault)),
        ("pgmajfault", u(mm.pgmajfault)),
        ("oom_kills", u(mm.events.oom_kill)),
        ("limit_bytes", u(s.spec.memory_limit_bytes)),
        ("reservation_bytes", u(s.spec.memory_reservation_bytes)),
        ("swap_limit_bytes", u(s.spec.memory_swap_limit_bytes)),
    ]);
    emit("container_memory", &mut base.clone(), &mem);

    let tasks = collect(&[
        ("threads", u(s.pids.current)),
        ("threads_max", u(s.pids.limit)),
        ("running", s.load.map(|l| Field::U64(l.running))),
        ("sleeping", s.load.map(|l| Field::U64(l.sleeping))),
        (
            "uninterruptible",
            s.load.map(|l| Field::U64(l.uninterruptible)),
        ),
        ("stopped", s.load.map(|l| Field::U64(l.stopped))),
        ("processes", u(s.processes.count)),
        ("file_descriptors", u(s.processes.fds)),
        ("sockets", u(s.processes.sockets)),
        ("max_open_files", u(s.processes.max_open_files)),
        ("processes_started", u(s.security.processes_started)),
    ]);
    emit("container_tasks", &mut base.clone(), &tasks);
    if let Some(findings) = &s.security.findings {
        let f = findings.labeled().map(|(k, v)| (k, Field::U64(v)));
        emit("container_security_findings", &mut base.clone(), &f);
    }
    if let Some(p) = &s.peers.current {
        let (i, o) = (&p.inbound, &p.outbound);
        let f = [
            ("inbound_container", Field::U64(i.container)),
            ("inbound_cluster", Field::U64(i.cluster)),
            ("inbound_external", Field::U64(i.external)),
            ("outbound_container", Field::U64(o.container)),
            ("outbound_cluster", Field::U64(o.cluster)),
            ("outbound_external", Field::U64(o.external)),
        ];
        emit("container_network_peers", &mut base.clone(), &f);
    }
    if let Some(n) = &s.peers.new_total {
        let f = n.labeled().map(|(k, v)| (k, Field::U64(v)));
        emit("container_network_new_peers", &mut base.clone(), &f);
    }

    let mut pressure = Vec::new();
    for (res, psi) in [
        ("cpu", s.pressure.cpu),
        ("memory", s.pressure.memory),
        ("io", s.pressure.io),
    ] {
        let Some(p) = psi else { continue };
        let (some_s, some_a, full_s, full_a) = match res {
            "cpu" => (
                "cpu_some_seconds",
                "cpu_some_avg10",
                "cpu_full_seconds",
                "cpu_full_avg10",
            ),
            "memory" => (
                "memory_some_seconds",
                "memory_some_avg10",
                "memory_full_seconds",
                "memory_full_avg10",
            ),
            _ => (
                "io_some_seconds",
                "io_some_avg10",
                "io_full_seconds",
                "io_full_avg10",
            ),
        };
        pressure.push((some_s, Field::F64(p.some.total_us as f64 / 1e6)));
        pressure.push((some_a, Field::F64(p.some.avg10)));
        if let Some(f) = p.full {
            pressure.push((full_s, Field::F64(f.total_us as f64 / 1e6)));
            pressure.push((full_a, Field::F64(f.avg10)));
        }
    }
    emit("container_pressure", &mut base.clone(), &pressure);

    if s.network.status == NetworkStatus::Own {
        for i in &s.network.interfaces {
            let mut tags = with_tag(&base, "interface", i.name.as_str());
            let f = [
                ("rx_bytes", Field::U64(i.rx_bytes)),
                ("rx_packets", Field::U64(i.rx_packets)),
                ("rx_errors", Field::U64(i.rx_errors)),
                ("rx_dropped", Field::U64(i.rx_dropped)),
                ("tx_bytes", Field::U64(i.tx_bytes)),
                ("tx_packets", Field::U64(i.tx_packets)),
                ("tx_errors", Field::U64(i.tx_errors)),
                ("tx_dropped", Field::U64(i.tx_dropped)),
            ];
            emit("container_network", &mut tags, &f);
        }
    }
    let so = &s.sockets;
    for (protocol, t) in [("tcp", &so.tcp), ("tcp6", &so.tcp6)] {
        if let Some(t) = t {
            let mut tags = with_tag(&base, "protocol", protocol);
            let f = t.labeled().map(|(k, v)| (k, Field::U64(v)));
            emit("container_sockets", &mut tags, &f);
        }
    }
    for (protocol, u) in [("udp", &so.udp), ("udp6", &so.udp6)] {
        if let Some(u) = u {
            let mut tags = with_tag(&base, "protocol", protocol);
            let f = u.labeled().map(|(k, v)| (k, Field::U64(v)));
            emit("container_sockets", &mut tags, &f);
        }
    }
    if let Some(fs) = &s.fs {
        let device = match &fs.device {
            Some(n) => format!("/dev/{n}"),
            None => format!("{}:{}", fs.major, fs.minor),
        };
        let mut tags = with_tag(&base, "device", device.as_str());
        let f = collect(&[
            ("usage_bytes", Some(Field::U64(fs.usage_bytes))),
            ("inodes_used", Some(Field::U64(fs.inodes_used))),
            ("limit_bytes", u(fs.limit_bytes)),
            ("available_bytes", u(fs.available_bytes)),
            ("inodes_total", u(fs.inodes_total)),
            ("inodes_free", u(fs.inodes_free)),
        ]);
        emit("container_fs", &mut tags, &f);
    }
    let mut dev = String::new();
    for d in &s.blkio {
        dev.clear();
        match &d.device {
            Some(n) => dev.push_str(n),
            None => {
                use std::fmt::Write;
                let _ = write!(dev, "{}:{}", d.major, d.minor);
            }
        }
        let mut tags = with_tag(&base, "device", dev.as_str());
        let f = [
            ("read_bytes", Field::U64(d.read_bytes)),
            ("write_bytes", Field::U64(d.write_bytes)),
            ("reads", Field::U64(d.reads)),
            ("writes", Field::U64(d.writes)),
        ];
        emit("container_blkio", &mut tags, &f);
    }
}

fn machine_points(
    snap: &Snapshot,
    host: &str,
    emit: &mut impl FnMut(&str, &mut [(&str, &str)], &[(&str, Field)]),
) {
    let m = &snap.machine;
    let mut fields: Vec<(&str, Field)> = [
        ("cpu_cores", m.cpu_cores),
        ("cpu_physical_cores", m.cpu_physical_cores),
        ("cpu_sockets", m.cpu_sockets),
        ("memory_bytes", m.memory_bytes),
        ("swap_bytes", m.swap_bytes),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, Field::U64(v))))
    .collect();
    if let Some(t) = &m.cpu_time {
        let sec = |ns: u64| Field::F64(ns as f64 / 1e9);
        fields.extend([
            ("cpu_user_seconds", sec(t.user_ns)),
            ("cpu_nice_seconds", sec(t.nice_ns)),
            ("cpu_system_seconds", sec(t.system_ns)),
            ("cpu_idle_seconds", sec(t.idle_ns)),
        ]);
        for (k, v) in [
            ("cpu_iowait_seconds", t.iowait_ns),
            ("cpu_irq_seconds", t.irq_ns),
            ("cpu_softirq_seconds", t.softirq_ns),
            ("cpu_steal_seconds", t.steal_ns),
        ] {
            if let Some(v) = v {
                fields.push((k, sec(v)));
            }
        }
    }
    for (res, psi) in [
        ("cpu", m.pressure.cpu),
        ("memory", m.pressure.memory),
        ("io", m.pressure.io),
    ] {
        if let Some(p) = psi {
            let (some, full) = match res {
                "cpu" => ("pressure_cpu_some_seconds", "pressure_cpu_full_seconds"),
                "memory" => (
                    "pressure_memory_some_seconds",
                    "pressure_memory_full_seconds",
                ),
                _ => ("pressure_io_some_seconds", "pressure_io_full_seconds"),
            };
            fields.push((some, Field::F64(p.some.total_us as f64 / 1e6)));
            if let Some(f) = p.full {
                fields.push((full, Field::F64(f.total_us as f64 / 1e6)));
            }
        }
    }
    // The machine and its boot as tags, as cAdvisor labels its machine series: a new boot
    // starts a new series.
    let mut tags: Vec<(&str, &str)> = vec![("host", host)];
    tags.extend(m.identity.labels());
    emit("machine", &mut tags, &fields);
    for f in &m.filesystems {
        let device = f.label();
        let mut tags = [
            ("host", host),
            ("device", device.as_str()),
            ("mountpoint", f.mountpoint.as_str()),
            ("fstype", f.fstype.as_str()),
        ];
        let mut fields = vec![
            ("size_bytes", Field::U64(f.size_bytes)),
            ("free_bytes", Field::U64(f.free_bytes)),
            ("avail_bytes", Field::U64(f.avail_bytes)),
        ];
        if let Some(v) = f.files {
            fields.push(("files", Field::U64(v)));
        }
        if let Some(v) = f.files_free {
            fields.push(("files_free", Field::U64(v)));
        }
        emit("machine_filesystem", &mut tags, &fields);
    }
    for d in &m.disks {
        let device = format!("/dev/{}", d.name);
        let mut tags = [("host", host), ("device", device.as_str())];
        let fields = [
            ("reads_completed", Field::U64(d.reads_completed)),
            ("read_bytes", Field::U64(d.read_bytes)),
            ("writes_completed", Field::U64(d.writes_completed)),
            ("written_bytes", Field::U64(d.written_bytes)),
            ("io_time_seconds", Field::F64(d.io_time_ms as f64 / 1e3)),
            ("io_now", Field::U64(d.io_in_progress)),
        ];
        emit("machine_disk", &mut tags, &fields);
    }
}

/// The container's tags plus one more (the interface, the device).
fn with_tag<'a>(
    base: &[(&'a str, &'a str); 9],
    k: &'a str,
    v: &'a str,
) -> [(&'a str, &'a str); 10] {
    let mut out = [("", ""); 10];
    out[..9].copy_from_slice(base);
    out[9] = (k, v);
    out
}

fn event_point(
    e: &Event,
    host: &str,
    emit: &mut impl FnMut(&str, &mut [(&str, &str)], &[(&str, Field)]),
) {
    let mut tags = [
        ("host", host),
        ("id", e.id.as_str()),
        ("container_id", e.container_id.as_deref().unwrap_or(&e.id)),
        ("name", e.name.as_deref().unwrap_or("")),
        ("image", e.image.as_deref().unwrap_or("")),
        ("runtime", e.runtime.map(|r| r.name()).unwrap_or("")),
        ("namespace", e.namespace.as_deref().unwrap_or("")),
        ("pod", e.pod.as_deref().unwrap_or("")),
        ("event", e.kind.name()),
    ];
    let mut fields = vec![("count", Field::U64(e.count))];
    let Some(f) = e.finding.as_deref() else {
        emit("container_events", &mut tags, &fields);
        return;
    };
    // A finding: how it was seen, its process and its connection's ends.
    let (local, remote) = (
        f.local.map(|a| a.to_string()),
        f.remote.map(|a| a.to_string()),
    );
    fields.push(("source", Field::Str(f.source)));
    if let Some(p) = &f.process {
        fields.extend([
            ("pid", Field::U64(p.pid.into())),
            ("ppid", Field::U64(p.ppid.into())),
            ("uid", Field::U64(p.uid.into())),
        ]);
        for (k, v) in [("comm", &p.comm), ("exe", &p.exe), ("cmdline", &p.cmdline)] {
            if !v.is_empty() {
                fields.push((k, Field::Str(v)));
            }
        }
    }
    for (k, v) in [("local", &local), ("remote", &remote)] {
        if let Some(v) = v {
            fields.push((k, Field::Str(v)));
        }
    }
    if let Some(p) = &f.peer {
        fields.extend([
            ("peer_direction", Field::Str(p.direction.name())),
            ("peer_scope", Field::Str(p.scope.name())),
            ("peer_port", Field::U64(p.port.into())),
        ]);
        let named = [
            ("peer_container_id", &p.container_id),
            ("peer_container_name", &p.container_name),
        ];
        for (k, v) in named {
            if let Some(v) = v {
                fields.push((k, Field::Str(v)));
            }
        }
    }
    emit("container_events", &mut tags, &fields);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::identity::Runtime;
    use crate::security::{Finding, FindingKind, ProcessRef};

    fn event(id: &str, kind: EventKind, finding: Option<Finding>) -> Event {
        Event {
            time_ms: 1_700_000_000_000,
            kind,
            id: id.into(),
            container_id: Some("c0ffee".into()),
            runtime: Some(Runtime::Docker),
            name: Some("web".into()),
            image: Some("busybox:1".into()),
            count: 1,
            namespace: None,
            pod: None,
            finding: finding.map(Box::new),
        }
    }

    fn miner(pid: u32, exe: &str) -> Finding {
        Finding {
            time_ms: 0,
            kind: FindingKind::MinerProcess,
            source: "exec",
            process: Some(ProcessRef {
                pid,
                ppid: 1,
                uid: 0,
                comm: "xmrig".into(),
                exe: exe.into(),
                cmdline: format!("{exe} -o \"stratum+tcp://pool.invalid:3333\""),
            }),
            local: None,
            remote: None,
            peer: None,
        }
    }

    fn lines(events: Vec<Event>) -> Vec<String> {
        let snap = Snapshot {
            timestamp_ms: 1_700_000_000_000,
            events,
            ..Default::default()
        };
        let mut out = Vec::new();
        encode(&snap, "h", false, false, &mut out);
        out.into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn a_lifecycle_event_is_a_count() {
        assert_eq!(
            lines(vec![event("/docker/c0ffee", EventKind::Started, None)]),
            ["container_events,container_id=c0ffee,event=started,host=h,id=/docker/c0ffee,image=busybox:1,name=web,runtime=docker count=1i 1700000000000000000"]
        );
    }

    #[test]
    fn a_finding_carries_its_process_and_endpoints() {
        let kind = EventKind::Finding(FindingKind::MinerProcess);
        let got = lines(vec![event(
            "/docker/c0ffee",
            kind,
            Some(miner(41, "/tmp/xmrig")),
        )]);
        assert_eq!(
            got,
            ["container_events,container_id=c0ffee,event=miner_process,host=h,id=/docker/c0ffee,image=busybox:1,name=web,runtime=docker count=1i,source=\"exec\",pid=41i,ppid=1i,uid=0i,comm=\"xmrig\",exe=\"/tmp/xmrig\",cmdline=\"/tmp/xmrig -o \\\"stratum+tcp://pool.invalid:3333\\\"\" 1700000000000000000"]
        );
        let net = Finding {
            time_ms: 0,
            kind: FindingKind::MinerPortConnection,
            source: "socket_table",
            process: None,
            local: Some("10.0.0.2:40000".parse().unwrap()),
            remote: Some("[2001:db8::1]:3333".parse().unwrap()),
            peer: None,
        };
        let got = lines(vec![event(
            "/docker/c0ffee",
            EventKind::Finding(FindingKind::MinerPortConnection),
            Some(net),
        )]);
        let p = influxdb_line_protocol::parse_lines(&got[0])
            .next()
            .unwrap()
            .unwrap();
        let field = |k: &str| {
            p.field_set
                .iter()
                .find(|(n, _)| n.as_str() == k)
                .map(|(_, v)| v.to_string())
        };
        assert_eq!(field("source").as_deref(), Some("socket_table"));
        assert_eq!(field("local").as_deref(), Some("10.0.0.2:40000"));
        assert_eq!(field("remote").as_deref(), Some("[2001:db8::1]:3333"));
        assert_eq!(field("pid"), None, "no process, no process fields");
    }

    /// Two findings of one kind in one container and sweep are two points: the second a
    /// nanosecond later, or InfluxDB would keep only the last.
    #[test]
    fn findings_of_one_series_in_one_sweep_are_points_of_their_own() {
        let kind = EventKind::Finding(FindingKind::MinerProcess);
        let got = lines(vec![
            event("/a", kind, Some(miner(41, "/tmp/xmrig"))),
            event("/a", kind, Some(miner(42, "/opt/xmrig"))),
            event("/b", kind, Some(miner(43, "/tmp/xmrig"))),
            event("/a", EventKind::Started, None),
        ]);
        let times: Vec<&str> = got.iter().map(|l| l.rsplit_once(' ').unwrap().1).collect();
        assert_eq!(
            times,
            [
                "1700000000000000000",
                "1700000000000000001",
                "1700000000000000000",
                "1700000000000000000"
            ]
        );
        for l in &got {
            let p = influxdb_line_protocol::parse_lines(l).next().unwrap();
            assert!(p.is_ok(), "{l}");
        }
    }
}
