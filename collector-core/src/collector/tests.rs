//! An idle sweep reports every figure of the last full read that it did not read itself, by
//! structure: checked over every field that the kernel captures fill.

use super::Collector;
use crate::dirs::DirPlan;
use crate::stats::ContainerStats;
use crate::testutil::{every_field, filled, fixture_collector};
use std::collections::BTreeSet;

const CAPTURES: [&str; 2] = ["cgroup-v1-hybrid-docker", "cgroup-v2-kubepods"];

impl Collector {
    /// Each followed cgroup's figures as an idle sweep reads them itself: the probe alone.
    fn probe_only(&mut self) -> Vec<ContainerStats> {
        let mut tracked = std::mem::take(&mut self.tracked);
        let mut sweep = self.sweeper(DirPlan::new(0, 0), Default::default(), 0);
        let mut out = Vec::new();
        for t in &mut tracked {
            sweep.probe(t);
            out.push(t.stats.clone());
        }
        self.tracked = tracked;
        out
    }
}

/// Each capture's containers read in full (per-CPU usage included), and by the probe alone.
fn reads(capture: &str) -> Vec<(String, ContainerStats, ContainerStats)> {
    let mut c = fixture_collector(capture);
    c.config.per_cpu = true;
    let full = c.sweep();
    let probes = c.probe_only();
    assert_eq!(full.containers.len(), probes.len());
    full.containers
        .into_iter()
        .zip(probes)
        .map(|(c, p)| (c.id, c.stats, p))
        .collect()
}

#[test]
fn an_idle_sweep_carries_every_figure_of_the_full_read() {
    for capture in CAPTURES {
        let unified = capture.contains("v2");
        let reads = reads(capture);
        assert!(
            reads.len() > 1,
            "{capture}: too few containers to say anything"
        );
        for (id, full, probe) in reads {
            let mut idle = probe;
            idle.carry_rest(&full, unified);
            // What every sweep sets on its own, whether idle or not.
            idle.network.clone_from(&full.network);
            idle.load = full.load;
            idle.spec.assign(&full.spec);
            idle.pids.limit = full.pids.limit;
            idle.fs.clone_from(&full.fs);
            assert_eq!(idle, full, "{capture} {id}");
        }
    }
}

/// Every figure of the groups a full read takes is filled by one capture or the other, so
/// the test above compares every one: a figure added to the readers and to `ContainerStats`
/// is covered as soon as a capture has its file, and one no capture has fails here.
#[test]
fn the_captures_fill_every_figure_of_the_full_read() {
    let mut seen = BTreeSet::new();
    for capture in CAPTURES {
        for (_, full, _) in reads(capture) {
            let v = serde_json::to_value(&full).expect("stats serialize");
            filled(&v, String::new(), &mut seen);
        }
    }
    let all = every_field();
    assert!(all.len() > 40, "the type's fields: {all:?}");
    let missing: Vec<_> = all
        .iter()
        .filter(|p| !OWN_PHASES.iter().any(|g| p.starts_with(g)))
        .filter(|p| !seen.contains(*p))
        .collect();
    assert!(missing.is_empty(), "no capture fills {missing:?}");
}

/// The groups every sweep sets by phases of its own, idle or not (the test above copies
/// them): tasks and their limit, load, network, spec, writable layer. And the process group and
/// socket states, which come from the processes' `/proc` directories that the captures do not
/// hold: the test below carries them. And the security counters and peers, kept by the
/// collector across sweeps and set at each (`signals.rs` and `peers.rs` have their tests).
const OWN_PHASES: [&str; 9] = [
    ".pids.",
    ".load.",
    ".network.",
    ".spec.",
    ".fs.",
    ".processes.",
    ".sockets.",
    ".security.",
    ".peers.",
];

#[test]
fn an_idle_sweep_carries_the_process_group_and_socket_states() {
    let full = ContainerStats {
        processes: crate::stats::ProcessStats {
            count: Some(3),
            fds: Some(40),
            sockets: Some(5),
            max_open_files: Some(1024),
        },
        sockets: crate::stats::SocketStats {
            tcp: Some(crate::stats::TcpCounts {
                established: 2,
                listen: 1,
                ..Default::default()
            }),
            udp6: Some(crate::stats::UdpCounts {
                listen: 1,
                ..Default::default()
            }),
            ..Default::default()
        },
        ..ContainerStats::default()
    };
    let mut idle = ContainerStats::default();
    idle.carry_rest(&full, false);
    assert_eq!(idle.processes, full.processes);
    assert_eq!(idle.sockets, full.sockets);
}

/// A copy of a capture that a test may change, and a collector over it (no inotify: rescans
/// only when asked or due).
fn copied_capture(capture: &str) -> (tempfile::TempDir, std::path::PathBuf, Collector) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(capture);
    let tmp = tempfile::tempdir().expect("a temp dir");
    let out = std::process::Command::new("cp")
        .arg("-r")
        .arg(&from)
        .arg(tmp.path())
        .output()
        .expect("cp");
    assert!(out.status.success(), "{out:?}");
    let root = tmp.path().join(capture);
    let c = Collector::new(crate::Config {
        roots: crate::Roots::under(&root),
        watch: false,
        load: false,
        processes: false,
        fs: crate::fs::FsConfig {
            container_layers: false,
            machine_filesystems: false,
            ..Default::default()
        },
        ..crate::Config::default()
    })
    .expect("the copied tree");
    (tmp, root, c)
}

/// A hierarchy that goes away takes its containers with it ("stopped" each), but not the
/// machine's root, which does not stop; and the collector says why it reads nothing.
#[test]
fn the_root_never_stops_when_the_hierarchy_goes() {
    let (_tmp, root, mut c) = copied_capture("cgroup-v2-kubepods");
    let first = c.sweep();
    assert!(first.containers.iter().any(|c| c.id == "/"));
    let followed = first.containers.len();
    std::fs::rename(root.join("sys/fs/cgroup"), root.join("sys/fs/gone")).expect("rename");
    c.rescan_soon();
    let after = c.sweep();
    let stopped: Vec<&str> = after
        .events
        .iter()
        .filter(|e| e.kind == crate::EventKind::Stopped)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(stopped.len(), followed - 1, "{stopped:?}");
    assert!(!stopped.contains(&"/"), "{stopped:?}");
    let problem = c.hierarchy_problem().expect("a reason");
    assert!(problem.contains("sys/fs/cgroup"), "{problem}");
}

/// A cgroup that a sweep's walk finds and that is gone by the time the sweep reads it (a
/// sweep over a thousand containers takes seconds on a slow machine) did start: its start is
/// told before its stop, never a stop alone. The churn soak on the cgroup v2 VM found 5 stops
/// without a start among 1,828 containers before.
#[test]
fn a_cgroup_gone_before_its_first_read_starts_and_stops() {
    let (_tmp, root, mut c) = copied_capture("cgroup-v2-kubepods");
    c.sweep();
    let dir = root.join("sys/fs/cgroup/brief");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("cgroup.procs"), "").expect("cgroup.procs");
    // The walk of the next sweep, alone; then the cgroup goes before the sweep's reads.
    c.rescan_soon();
    c.refresh(&mut crate::Snapshot::default());
    assert!(c.ids().any(|id| id == "/brief"), "the walk found it");
    std::fs::remove_dir_all(&dir).expect("rmdir");
    let s = c.sweep();
    let told: Vec<&str> = s
        .events
        .iter()
        .filter(|e| e.id == "/brief")
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(told, ["started", "stopped"], "{:?}", s.events);
    assert!(s.get("/brief").is_none());
    assert!(!c.ids().any(|id| id == "/brief"));
}

/// A pod of the v2 capture and one of its containers.
fn a_pod_and_its_container() -> (crate::Container, crate::Container) {
    let snap = fixture_collector("cgroup-v2-kubepods").sweep();
    let pod = snap
        .containers
        .iter()
        .find(|c| c.identity.kind == crate::Kind::Pod)
        .expect("a pod in the capture")
        .clone();
    let child = snap
        .containers
        .iter()
        .find(|c| {
            c.identity.kind == crate::Kind::Container
                && c.identity.pod_uid.is_some()
                && c.identity.pod_uid == pod.identity.pod_uid
        })
        .expect("one of its containers")
        .clone();
    (pod, child)
}

/// A pod's own cgroup is named by its containers (namespace and pod, no container or image);
/// a pod none of whose containers is named stays unnamed.
#[test]
fn a_pod_cgroup_takes_its_containers_namespace_and_pod() {
    let (pod, mut child) = a_pod_and_its_container();
    child.meta.namespace = Some("prod".into());
    child.meta.pod = Some("payments-7c9d".into());
    child.meta.container = Some("api".into());
    child.meta.image = Some("registry/api:1".into());
    let mut other = pod.clone();
    other.id.push_str("-other");
    other.identity.pod_uid = Some("another-uid".into());
    let mut list = vec![pod, child, other];
    super::name_pods(&mut list);
    let (p, o) = (&list[0].meta, &list[2].meta);
    assert_eq!(
        (p.namespace.as_deref(), p.pod.as_deref()),
        (Some("prod"), Some("payments-7c9d"))
    );
    assert_eq!((p.container.as_deref(), p.image.as_deref()), (None, None));
    assert_eq!((o.namespace.as_deref(), o.pod.as_deref()), (None, None));
}

/// A pod's network once: on its sandbox; without one (CRI-O's default), on the pod's own
/// cgroup; without that either, on its first application container.
#[test]
fn a_pods_network_is_reported_once() {
    use crate::stats::{InterfaceStats, NetworkStatus};
    let (pod, template) = a_pod_and_its_container();
    let member = |id: &str, container: Option<&str>| {
        let mut c = template.clone();
        c.id = format!("{}/{id}", pod.id);
        c.meta.container = container.map(String::from);
        c.stats.network.status = NetworkStatus::Own;
        c.stats.network.interfaces = vec![InterfaceStats {
            name: "eth0".into(),
            rx_bytes: 1000,
            ..Default::default()
        }];
        c
    };
    let own = |c: &crate::Container| c.stats.network.status == NetworkStatus::Own;

    let mut with_sandbox = vec![
        pod.clone(),
        member("a", Some("app")),
        member("s", None),
        member("b", Some("log")),
    ];
    super::pod_network_once(&mut with_sandbox);
    assert_eq!(
        with_sandbox.iter().map(own).collect::<Vec<_>>(),
        [false, false, true, false]
    );

    let mut without = vec![
        pod.clone(),
        member("a", Some("app")),
        member("b", Some("log")),
    ];
    without[0].stats.network = Default::default();
    super::pod_network_once(&mut without);
    assert_eq!(
        without.iter().map(own).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(without[0].stats.network.interfaces[0].rx_bytes, 1000);

    let mut no_pod = vec![member("a", Some("app")), member("b", Some("log"))];
    super::pod_network_once(&mut no_pod);
    assert_eq!(no_pod.iter().map(own).collect::<Vec<_>>(), [true, false]);
}
