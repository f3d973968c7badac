//! The encoder's output against golden files in `../testdata/`: hand-made snapshots with every
//! kind of figure (absent, non-finite, escaped, colliding label keys) and two sweeps of each
//! kernel capture with counters moved in between, plus events. The files hold what the encoder
//! wrote when they were made; documents are compared as JSON values (key order aside).
//! `GOLDEN_UPDATE=1 cargo test -p collector-core --features elasticsearch --lib golden` writes
//! them anew, for an intended change of the documents.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::tests::container;
use super::*;
use crate::collector::Metadata;
use crate::identity::{Identity, Kind, Runtime};
use crate::machine::{CpuTime, Disk, Filesystem};
use crate::stats::{ContainerStats, DeviceIo, FsStats, LoadSource, LoadStats, Psi, PsiLine};

const T0: u64 = 1_700_000_000_000;

/// Everything odd at once: non-finite floats, escapes, label keys that clash once dedotted,
/// an empty label key, a namespace without a pod, the host's network namespace.
fn odd(extra_device: bool) -> Container {
    let mut c = container("/odd/\"quoted\"", 0, 0, 0);
    c.identity = Identity {
        kind: Kind::Pod,
        runtime: None,
        container_id: None,
        pod_uid: None,
        qos_class: Some("besteffort".into()),
    };
    c.meta = Metadata {
        name: None,
        image: None,
        namespace: Some("ns".into()),
        pod: None,
        container: Some("quote\" back\\slash new\nline \u{1} é 名前".into()),
        labels: [
            ("a.b", "1"),
            ("a_b", "2"),
            ("", "empty key"),
            ("x.y.z", "3"),
            ("plain", "é\t\"x\""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    let s = &mut c.stats;
    s.cpu = Default::default();
    s.cpu.user_ns = Some(5);
    s.cpu.per_cpu_ns = vec![1, 2];
    s.memory.usage_bytes = None;
    s.memory.events.oom_kill = Some(1);
    s.pids.current = Some(3);
    s.network.status = NetworkStatus::HostNamespace;
    s.network.interfaces.clear();
    s.load = Some(LoadStats {
        running: 1,
        load_average_10s: f64::NAN,
        load_d_average_10s: 0.5,
        source: LoadSource::Procfs,
        ..Default::default()
    });
    let line = |a: f64| PsiLine {
        avg10: a,
        avg60: f64::INFINITY,
        avg300: 1.25,
        total_us: 7,
    };
    s.pressure.cpu = Some(Psi {
        some: line(f64::NAN),
        full: None,
    });
    s.pressure.memory = Some(Psi {
        some: line(0.0),
        full: Some(line(2.5)),
    });
    s.spec.cpuset_cpus = Some("0-3".into());
    s.spec.memory_limit_bytes = None;
    s.fs = Some(FsStats {
        major: 8,
        minor: 1,
        device: None,
        upperdir: "/var/lib/docker/overlay2/x/diff".into(),
        usage_bytes: 4096,
        inodes_used: 2,
        limit_bytes: Some(1 << 30),
        available_bytes: None,
        inodes_total: None,
        inodes_free: None,
        measured_ms: T0 - 5_000,
        age_ms: 5_000,
        walk_duration_ms: 3,
        backoff: 1,
    });
    s.blkio[0].device = None;
    s.blkio[0].discards = Some(2);
    if extra_device {
        s.blkio.push(DeviceIo {
            major: 8,
            minor: 0,
            device: Some("sda".into()),
            read_bytes: 512,
            write_bytes: 1024,
            reads: 1,
            writes: 2,
            ..Default::default()
        });
    }
    c
}

/// A systemd cgroup of which nothing could be read: every object left empty.
fn empty() -> Container {
    let mut c = container("/system.slice/x.service", 0, 0, 0);
    c.identity = Identity {
        kind: Kind::Systemd,
        runtime: None,
        container_id: None,
        pod_uid: None,
        qos_class: None,
    };
    c.meta = Metadata::default();
    c.stats = ContainerStats::default();
    c
}

/// The unit tests' snapshot, with the machine's other figures too.
fn snap(ts: u64, containers: Vec<Container>, events: Vec<Event>) -> Snapshot {
    let mut s = super::tests::snap(ts, containers, events);
    let m = &mut s.machine;
    m.cpu_time = Some(CpuTime {
        user_ns: 10,
        nice_ns: 0,
        system_ns: 20,
        idle_ns: 30,
        iowait_ns: Some(1),
        irq_ns: None,
        softirq_ns: None,
        steal_ns: None,
    });
    m.filesystems = vec![Filesystem {
        major: 254,
        minor: 1,
        device: None,
        source: "server:/export".into(),
        mountpoint: "/mnt/a \"b\"".into(),
        fstype: "nfs4".into(),
        size_bytes: 100,
        free_bytes: 50,
        avail_bytes: 40,
        files: None,
        files_free: None,
        readonly: true,
    }];
    m.disks = vec![Disk {
        major: 254,
        minor: 0,
        name: "vda".into(),
        reads_completed: 3,
        read_bytes: 1536,
        discards_completed: Some(0),
        ..Default::default()
    }];
    m.pressure.io = Some(Psi {
        some: PsiLine {
            avg10: 0.1,
            avg60: 0.2,
            avg300: 0.3,
            total_us: 4,
        },
        full: None,
    });
    s
}

fn event(kind: EventKind, id: &str, time_ms: u64, count: u64) -> Event {
    Event {
        time_ms,
        kind,
        id: id.into(),
        container_id: Some("c0ffee".into()),
        runtime: Some(Runtime::Containerd),
        name: None,
        image: Some("nginx:1.25".into()),
        count,
        namespace: None,
        pod: None,
        finding: None,
    }
}

fn synthetic() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut e = Encoder::new(
        "node1",
        Destination::DataStream("metrics-container-default".into()),
    );
    let c = |cpu, rx, read| container("/kubepods/pod1/c0ffee", cpu, rx, read);
    e.encode(
        &snap(
            T0,
            vec![c(1_000_000_000, 100, 4096), odd(false), empty()],
            vec![],
        ),
        true,
        &mut out,
    );
    let mut named = event(EventKind::Started, "/odd/\"quoted\"", T0 + 10_000, 1);
    named.name = Some("named".into());
    named.container_id = None;
    named.runtime = None;
    e.encode(
        &snap(
            T0 + 10_000,
            vec![c(6_000_000_000, 1100, 8192), odd(true), empty()],
            vec![named],
        ),
        true,
        &mut out,
    );
    // The odd one gone: its stop takes the namespace from what was seen of it.
    e.encode(
        &snap(
            T0 + 20_000,
            vec![c(1_000, 1100, 8192)],
            vec![
                event(EventKind::OomKill, "/kubepods/pod1/c0ffee", T0 + 20_000, 2),
                event(EventKind::Stopped, "/odd/\"quoted\"", T0 + 20_000, 1),
                event(
                    EventKind::Raised("policy_violation"),
                    "/kubepods/pod1/c0ffee",
                    T0,
                    1,
                ),
            ],
        ),
        true,
        &mut out,
    );
    e.encode(
        &snap(
            T0 + 25_000,
            vec![],
            vec![event(EventKind::Stopped, "/never/seen", T0 + 25_000, 1)],
        ),
        false,
        &mut out,
    );
    // Dated indices, no machine document, no limit and no machine size.
    let mut e = Encoder::new(
        "h",
        Destination::Indices(IndexPattern::parse("container-metrics-%Y.%m.%d").unwrap()),
    );
    e.machine = false;
    let mut a = container("/a", 0, 0, 0);
    a.stats.spec.memory_limit_bytes = None;
    a.meta = Metadata::default();
    a.identity.container_id = None;
    for (i, ts) in [T0, T0 + 86_400_000].into_iter().enumerate() {
        let mut s = snap(ts, vec![a.clone(), container("/b", i as u64, 0, 0)], vec![]);
        s.machine.memory_bytes = None;
        s.machine.cpu_cores = Some(0);
        e.encode(&s, true, &mut out);
    }
    out
}

/// Two sweeps of a kernel capture at fixed times, counters moved in between, plus events.
fn fixture(name: &str) -> Vec<Vec<u8>> {
    let mut col = crate::testutil::fixture_collector(name);
    let mut first = col.sweep();
    assert!(!first.containers.is_empty(), "{name}: no containers");
    first.timestamp_ms = T0;
    let mut second = col.sweep();
    second.timestamp_ms = T0 + 10_000;
    for (i, c) in second.containers.iter_mut().enumerate() {
        let i = i as u64 + 1;
        let s = &mut c.stats;
        s.cpu.usage_ns = s.cpu.usage_ns.map(|v| v + i * 2_500_000_000);
        for n in &mut s.network.interfaces {
            n.rx_bytes += 1000 * i;
            n.tx_bytes += 10 * i;
        }
        for d in &mut s.blkio {
            d.read_bytes += 4096 * i;
            d.write_bytes += 512;
        }
    }
    let ids: Vec<String> = second.containers.iter().map(|c| c.id.clone()).collect();
    let last = ids.last().cloned().unwrap_or_default();
    second.events = vec![
        event(EventKind::Started, &ids[0], T0 + 10_000, 1),
        event(EventKind::OomKill, &last, T0 + 10_000, 3),
        event(EventKind::Stopped, "/gone", T0 + 10_000, 1),
    ];
    let mut e = Encoder::new(
        "golden-host",
        Destination::DataStream("metrics-container-default".into()),
    );
    let mut out = Vec::new();
    e.encode(&first, true, &mut out);
    e.encode(&second, true, &mut out);
    out
}

fn path(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/elastic/testdata")
        .join(format!("{case}.ndjson"))
}

fn lines(items: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for i in items {
        s.push_str(std::str::from_utf8(i).expect("UTF-8"));
        s.push('\n');
    }
    s
}

/// Nulls and empty objects must not reach Elasticsearch: absent figures are absent.
fn no_nulls(v: &Value, at: &str) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            let at = format!("{at}.{k}");
            assert!(!x.is_null(), "{at} is null");
            assert!(
                !x.as_object().is_some_and(serde_json::Map::is_empty),
                "{at} is {{}}"
            );
            no_nulls(x, &at);
        }
    } else if let Value::Array(a) = v {
        a.iter().for_each(|x| no_nulls(x, at));
    }
}

fn check(case: &str, items: Vec<Vec<u8>>) {
    let ours = lines(&items);
    let file = path(case);
    if std::env::var_os("GOLDEN_UPDATE").is_some() {
        std::fs::write(&file, &ours).expect("writing the golden file");
        return;
    }
    let golden = std::fs::read_to_string(&file).expect("the golden file");
    let (ours, golden): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), golden.lines().collect());
    assert_eq!(ours.len(), golden.len(), "{case}: line count");
    for (n, (a, b)) in ours.iter().zip(&golden).enumerate() {
        let a: Value = serde_json::from_str(a).expect("our line is JSON");
        let b: Value = serde_json::from_str(b).expect("the golden line is JSON");
        assert!(
            a == b,
            "{case}, line {}:\n ours:   {a}\n golden: {b}",
            n + 1
        );
        no_nulls(&a, "");
    }
}

#[test]
fn golden_documents() {
    check("synthetic", synthetic());
    for f in ["cgroup-v1-hybrid-docker", "cgroup-v2-kubepods"] {
        check(f, fixture(f));
    }
}
