//! The readers on real kernel captures (see `tests/fixtures/README.md`), and on copies of them
//! with files broken in the ways a live kernel or a dying container can break them.

use std::path::{Path, PathBuf};

use collector_core::{Collector, Config, Kind, NetworkStatus, Roots, Runtime, Setup, Snapshot};

const DOCKER_ID: &str = "c1a97e2c6fcca05af093095dbb1a37ca2261b81d742d9f55447de73add9c5344";
const POD: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f6c1d2e_3a4b_4c5d_8e9f_0a1b2c3d4e5f.slice";
const BUSY: &str =
    "cri-containerd-4f1c2e9a7b3d5c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6.scope";
const OOM: &str =
    "cri-containerd-0000000000000000000000000000000000000000000000000000000000000001.scope";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn config(root: &Path) -> Config {
    Config {
        roots: Roots::under(root),
        watch: false,
        load: false,
        per_cpu: true,
        ..Config::default()
    }
}

fn sweep(root: &Path) -> Snapshot {
    Collector::new(config(root)).expect("hierarchy").sweep()
}

/// A private copy of a fixture tree to break.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture(name).display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

#[test]
fn v2_kubepods_tree() {
    let s = sweep(&fixture("cgroup-v2-kubepods"));
    assert_eq!(s.setup, Some(Setup::Unified));
    assert!(s.errors.is_empty(), "{:?}", s.errors);

    let busy = s.get(&format!("{POD}/{BUSY}")).expect("busy container");
    assert_eq!(busy.identity.kind, Kind::Container);
    assert_eq!(busy.identity.runtime, Some(Runtime::Containerd));
    assert_eq!(
        busy.identity.pod_uid.as_deref(),
        Some("0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f")
    );
    let st = &busy.stats;
    assert_eq!(st.cpu.usage_ns, Some(11_968_063_000));
    assert_eq!(st.cpu.user_ns, Some(10_410_110_000));
    assert_eq!(st.cpu.system_ns, Some(1_557_953_000));
    assert_eq!(st.cpu.nr_periods, Some(264));
    assert_eq!(st.cpu.nr_throttled, Some(78));
    assert_eq!(st.cpu.throttled_ns, Some(3_576_400_000));
    assert_eq!(st.spec.cpu_quota_us, Some(50_000));
    assert_eq!(st.spec.cpu_period_us, Some(100_000));
    assert_eq!(st.spec.cpu_weight, Some(200));
    // runc's conversion, inverted: weight 200 <-> shares 5222.
    assert_eq!(st.spec.cpu_shares, Some(2 + 199 * 262_142 / 9_999));
    assert_eq!(st.spec.memory_limit_bytes, Some(256 << 20));
    assert_eq!(st.spec.memory_high_bytes, Some(192 << 20));
    assert_eq!(st.spec.memory_reservation_bytes, None);
    assert_eq!(st.spec.memory_swap_limit_bytes, None);
    assert_eq!(st.spec.pids_limit, Some(100));
    assert_eq!(st.memory.usage_bytes, Some(42_274_816));
    assert_eq!(st.memory.max_usage_bytes, Some(68_767_744));
    assert_eq!(st.memory.shmem_bytes, Some(41_943_040));
    assert_eq!(st.memory.cache_bytes, Some(41_943_040));
    assert_eq!(st.memory.rss_bytes, Some(16_384));
    // inactive_file is 0 here: the tmpfs file is anon-backed shmem.
    assert_eq!(st.memory.working_set_bytes, Some(42_274_816));
    assert_eq!(st.memory.events.oom_kill, Some(0));
    assert_eq!(st.pids.current, Some(1));
    assert_eq!(st.blkio.len(), 1);
    let io = &st.blkio[0];
    assert_eq!(
        (io.major, io.minor, io.device.as_deref()),
        (254, 0, Some("nullb0"))
    );
    assert_eq!((io.read_bytes, io.write_bytes), (26_345_472, 10_485_760));
    assert_eq!((io.reads, io.writes, io.discards), (402, 2560, Some(0)));
    let cpu_psi = st.pressure.cpu.expect("cpu.pressure");
    assert_eq!(cpu_psi.some.total_us, 14_279_041);
    assert_eq!(cpu_psi.some.avg10, 50.12);
    assert_eq!(cpu_psi.full.unwrap().total_us, 14_274_503);
    assert_eq!(st.pressure.io.unwrap().some.total_us, 11_120);
    // Its own namespace, whose only interface is `lo`: left out by default, as cAdvisor does.
    assert_eq!(st.network.status, NetworkStatus::Own);
    assert!(st.network.interfaces.is_empty(), "{:?}", st.network);

    let oom = s.get(&format!("{POD}/{OOM}")).expect("oom container");
    let ev = &oom.stats.memory.events;
    assert_eq!((ev.max, ev.oom, ev.oom_kill), (Some(35), Some(1), Some(1)));

    let pod = s.get(POD).expect("pod");
    assert_eq!(pod.identity.kind, Kind::Pod);
    let docker = s
        .containers
        .iter()
        .find(|c| c.id.starts_with("/system.slice/docker-"))
        .expect("docker scope");
    assert_eq!(docker.identity.runtime, Some(Runtime::Docker));
    let svc = s.get("/system.slice/containerd.service").expect("service");
    assert_eq!(svc.identity.kind, Kind::Systemd);
    assert_eq!(svc.stats.network.status, NetworkStatus::NoProcess);
    let root = s.get("/").expect("root");
    assert_eq!(root.identity.kind, Kind::Root);
    // The v2 root has no memory.current; it is absent, not zero.
    assert_eq!(root.stats.memory.usage_bytes, None);
}

#[test]
fn v1_hybrid_docker_container() {
    let s = sweep(&fixture("cgroup-v1-hybrid-docker"));
    assert_eq!(s.setup, Some(Setup::Hybrid));
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let c = s
        .get(&format!("/docker/{DOCKER_ID}"))
        .expect("docker container");
    assert_eq!(c.identity.runtime, Some(Runtime::Docker));
    assert_eq!(c.identity.container_id.as_deref(), Some(DOCKER_ID));
    let st = &c.stats;
    // The usage too comes from the twin's cpu.stat (the capture's cpuacct.usage, read a moment
    // earlier while the container was busy, says 13_696_074_060).
    assert_eq!(st.cpu.usage_ns, Some(13_918_625_000));
    assert_eq!(st.cpu.per_cpu_ns, vec![13_461_465_515, 234_608_545]);
    // Exact user/system from the unified twin, not the tick-rounded cpuacct.stat.
    assert_eq!(st.cpu.user_ns, Some(13_824_853_000));
    assert_eq!(st.cpu.system_ns, Some(93_772_000));
    assert_eq!(st.cpu.nr_periods, Some(275));
    assert_eq!(st.cpu.nr_throttled, Some(271));
    assert_eq!(st.cpu.throttled_ns, Some(13_949_097_627));
    assert_eq!(st.spec.cpu_quota_us, Some(50_000));
    assert_eq!(st.spec.cpu_shares, Some(1024));
    assert_eq!(st.spec.memory_limit_bytes, Some(256 << 20));
    // The soft limit reads 9223372036854771712: no reservation.
    assert_eq!(st.spec.memory_reservation_bytes, None);
    assert_eq!(st.spec.memory_swap_limit_bytes, Some(512 << 20));
    assert_eq!(st.memory.usage_bytes, Some(64_274_432));
    assert_eq!(st.memory.max_usage_bytes, Some(66_265_088));
    assert_eq!(st.memory.cache_bytes, Some(61_882_368));
    assert_eq!(st.memory.rss_bytes, Some(61_440));
    assert_eq!(st.memory.inactive_file_bytes, Some(61_865_984));
    assert_eq!(st.memory.working_set_bytes, Some(64_274_432 - 61_865_984));
    assert_eq!(st.memory.swap_bytes, Some(0));
    assert_eq!(st.memory.failcnt, Some(0));
    assert_eq!(st.memory.events.oom_kill, Some(0));
    assert_eq!(st.memory.events.oom, None);
    assert_eq!((st.pids.current, st.pids.limit), (Some(1), Some(100)));
    assert_eq!(st.blkio.len(), 1);
    let io = &st.blkio[0];
    assert_eq!(io.device.as_deref(), Some("vda"));
    assert_eq!((io.read_bytes, io.write_bytes), (10 << 20, 10 << 20));
    assert_eq!((io.reads, io.writes), (160, 160));
    assert_eq!(st.pressure.cpu.unwrap().some.total_us, 13_238_867);
    assert_eq!(st.network.status, NetworkStatus::Own);
    let eth0 = st
        .network
        .interfaces
        .iter()
        .find(|i| i.name == "eth0")
        .unwrap();
    assert_eq!((eth0.rx_bytes, eth0.tx_bytes), (5768, 5252));
    assert_eq!((eth0.rx_packets, eth0.tx_packets), (12, 6));
}

/// Every interface name reported in a snapshot.
fn interface_names(s: &Snapshot) -> Vec<&str> {
    s.containers
        .iter()
        .flat_map(|c| c.stats.network.interfaces.iter().map(|i| i.name.as_str()))
        .collect()
}

/// With no ignored prefixes, every interface of the namespace is reported, `lo` included.
#[test]
fn ignored_interfaces_are_configurable() {
    let root = fixture("cgroup-v2-kubepods");
    let mut col = Collector::new(Config {
        network_ignore: Vec::new(),
        ..config(&root)
    })
    .unwrap();
    let s = col.sweep();
    let names = interface_names(&s);
    assert!(names.contains(&"lo"), "{names:?}");
    // Any prefix: in the v1 capture (lo and eth0), leaving out `eth` keeps `lo` only.
    let mut col = Collector::new(Config {
        network_ignore: vec!["eth".into()],
        ..config(&fixture("cgroup-v1-hybrid-docker"))
    })
    .unwrap();
    let s = col.sweep();
    let names = interface_names(&s);
    assert!(names.contains(&"lo"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("eth")), "{names:?}");
}

#[test]
fn legacy_v1_without_unified_twin() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let mi = dir.path().join("proc/self/mountinfo");
    let text = std::fs::read_to_string(&mi).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains("cgroup2"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&mi, kept).unwrap();
    let s = sweep(dir.path());
    assert_eq!(s.setup, Some(Setup::Legacy));
    let c = s.get(&format!("/docker/{DOCKER_ID}")).unwrap();
    // Without the twin, user/system come from cpuacct.stat ticks (USER_HZ = 100 here).
    assert_eq!(c.stats.cpu.user_ns, Some(13_590_000_000));
    assert_eq!(c.stats.cpu.system_ns, Some(90_000_000));
    assert_eq!(c.stats.pressure.cpu, None);
}

/// By default the files a sweep does not need are not opened at all: per-CPU usage (off like
/// cAdvisor's percpu metrics) and, with the hybrid twin present, v1's tick-rounded
/// cpuacct.stat; and memsw.usage, since memory.stat's total_swap says the same. Broken copies
/// of all three therefore give no errors.
#[test]
fn files_not_wanted_are_not_read() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let root = dir.path();
    // (cpuacct.usage is read on the spec interval, to check the twin against it.)
    for file in ["cpuacct.usage_percpu", "cpuacct.stat"] {
        std::fs::write(docker_dir(root, "cpuacct").join(file), "garbage\n").unwrap();
    }
    // Swap comes from memory.stat's total_swap, not from memsw.usage less usage.
    let memory = docker_dir(root, "memory");
    std::fs::write(memory.join("memory.memsw.usage_in_bytes"), "garbage\n").unwrap();
    let stat = std::fs::read_to_string(memory.join("memory.stat")).unwrap();
    std::fs::write(
        memory.join("memory.stat"),
        stat.replace("total_swap 0", "total_swap 8192"),
    )
    .unwrap();
    let mut col = Collector::new(Config {
        per_cpu: false,
        ..config(root)
    })
    .unwrap();
    let s = col.sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let c = s.get(&format!("/docker/{DOCKER_ID}")).unwrap();
    assert!(c.stats.cpu.per_cpu_ns.is_empty());
    assert_eq!(c.stats.cpu.user_ns, Some(13_824_853_000));
    assert_eq!(c.stats.cpu.usage_ns, Some(13_918_625_000));
    assert_eq!(c.stats.memory.swap_bytes, Some(8192));
}

#[test]
fn host_network_namespace_is_not_credited() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let link = dir.path().join("proc/25168/ns/net");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("net:[4026531840]", &link).unwrap();
    let s = sweep(dir.path());
    let c = s.get(&format!("/docker/{DOCKER_ID}")).unwrap();
    assert_eq!(c.stats.network.status, NetworkStatus::HostNamespace);
    assert!(c.stats.network.interfaces.is_empty());
}

fn docker_dir(root: &Path, ctrl: &str) -> PathBuf {
    root.join("sys/fs/cgroup")
        .join(ctrl)
        .join("docker")
        .join(DOCKER_ID)
}

#[test]
fn malformed_files_give_errors_with_paths_and_keep_the_rest() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let root = dir.path();
    std::fs::write(
        docker_dir(root, "memory").join("memory.usage_in_bytes"),
        "lots\n",
    )
    .unwrap();
    // A memory.stat with one broken line: the other keys still count.
    let stat = docker_dir(root, "memory").join("memory.stat");
    let text = std::fs::read_to_string(&stat).unwrap();
    std::fs::write(&stat, text.replace("total_rss 61440", "total_rss")).unwrap();
    std::fs::write(
        docker_dir(root, "cpuacct").join("cpuacct.usage_percpu"),
        "12 x 3",
    )
    .unwrap();
    std::fs::write(
        docker_dir(root, "unified").join("cpu.pressure"),
        "some avg10=1.0\n",
    )
    .unwrap();
    let s = sweep(root);
    let c = s.get(&format!("/docker/{DOCKER_ID}")).unwrap();
    assert_eq!(c.stats.memory.usage_bytes, None);
    assert_eq!(c.stats.memory.rss_bytes, None);
    assert_eq!(c.stats.memory.cache_bytes, Some(61_882_368));
    // No usage, so no working set either: never a made-up figure.
    assert_eq!(c.stats.memory.working_set_bytes, None);
    assert!(c.stats.cpu.per_cpu_ns.is_empty());
    assert_eq!(c.stats.cpu.usage_ns, Some(13_918_625_000));
    assert_eq!(c.stats.pressure.cpu, None);
    assert!(c.stats.pressure.memory.is_some());
    let msgs: Vec<String> = s.errors.iter().map(|e| e.to_string()).collect();
    for file in [
        "memory.usage_in_bytes",
        "memory.stat",
        "cpuacct.usage_percpu",
        "cpu.pressure",
    ] {
        assert!(
            msgs.iter()
                .any(|m| m.contains(file) && m.contains(DOCKER_ID)),
            "no error naming {file}: {msgs:?}"
        );
    }
    assert_eq!(s.errors.len(), 4, "{msgs:?}");
}

#[test]
fn truncated_and_half_written_files() {
    let dir = copy_of("cgroup-v2-kubepods");
    let root = dir.path();
    let busy = root.join("sys/fs/cgroup").join(&POD[1..]).join(BUSY);
    // io.stat while the kernel sets a device up: the row lacks counters. Skipped, not zeros.
    std::fs::write(
        busy.join("io.stat"),
        "254:0 rbytes=26345472 wbytes=10485760 rios=402 wios=2560 dbytes=0 dios=0\n8:0 rbytes=5\n",
    )
    .unwrap();
    // A file cut mid-line and an empty one.
    std::fs::write(busy.join("cpu.stat"), "usage_usec 11968063\nuser_us").unwrap();
    std::fs::write(busy.join("memory.current"), "").unwrap();
    std::fs::write(busy.join("cpu.max"), "50000").unwrap();
    let s = sweep(root);
    let c = s.get(&format!("{POD}/{BUSY}")).unwrap();
    assert_eq!(c.stats.blkio.len(), 1);
    assert_eq!(c.stats.blkio[0].major, 254);
    assert_eq!(c.stats.cpu.usage_ns, Some(11_968_063_000));
    assert_eq!(c.stats.cpu.user_ns, None);
    assert_eq!(c.stats.memory.usage_bytes, None);
    assert_eq!(c.stats.spec.cpu_quota_us, None);
    let msgs: Vec<String> = s.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("cpu.stat") && m.contains("line 2")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("memory.current")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("cpu.max")), "{msgs:?}");
}

#[test]
fn missing_files_are_absent_not_zero() {
    let dir = copy_of("cgroup-v2-kubepods");
    let busy = dir.path().join("sys/fs/cgroup").join(&POD[1..]).join(BUSY);
    for f in [
        "memory.peak",
        "io.stat",
        "cpu.pressure",
        "memory.swap.current",
    ] {
        std::fs::remove_file(busy.join(f)).unwrap();
    }
    let s = sweep(dir.path());
    let c = s.get(&format!("{POD}/{BUSY}")).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(c.stats.memory.max_usage_bytes, None);
    assert!(c.stats.blkio.is_empty());
    assert_eq!(c.stats.pressure.cpu, None);
    assert_eq!(c.stats.memory.swap_bytes, None);
    assert_eq!(c.stats.memory.usage_bytes, Some(42_274_816));
}

#[test]
fn vanished_container_is_dropped_quietly() {
    let dir = copy_of("cgroup-v2-kubepods");
    let mut col = Collector::new(config(dir.path())).unwrap();
    let first = col.sweep();
    let id = format!("{POD}/{OOM}");
    assert!(first.get(&id).is_some());
    std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup").join(&id[1..])).unwrap();
    // Without a rescan the collector still tracks it; reading finds it gone.
    let second = col.sweep();
    assert!(second.get(&id).is_none());
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(second.containers.len(), first.containers.len() - 1);
}

#[test]
fn include_and_exclude_prefixes() {
    let root = fixture("cgroup-v2-kubepods");
    let mut cfg = config(&root);
    cfg.include = vec!["/kubepods.slice".into()];
    cfg.exclude = vec![format!("{POD}/{OOM}")];
    let s = Collector::new(cfg).unwrap().sweep();
    assert!(s
        .containers
        .iter()
        .all(|c| c.id.starts_with("/kubepods.slice")));
    assert!(s.get(&format!("{POD}/{BUSY}")).is_some());
    assert!(s.get(&format!("{POD}/{OOM}")).is_none());
    assert!(s.get("/").is_none());
}

#[test]
fn no_hierarchy_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
    std::fs::write(
        dir.path().join("proc/self/mountinfo"),
        "22 27 0:21 / /proc rw - proc proc rw\n",
    )
    .unwrap();
    let err = Collector::new(config(dir.path())).unwrap_err().to_string();
    assert!(err.contains("no cgroup"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn lifecycle_events_started_stopped_and_oom() {
    use collector_core::EventKind;
    let dir = copy_of("cgroup-v2-kubepods");
    let mut col = Collector::new(config(dir.path())).unwrap();
    let first = col.sweep();
    // Containers present at start are not news.
    assert!(first.events.is_empty(), "{:?}", first.events);

    let busy = dir.path().join("sys/fs/cgroup").join(&POD[1..]).join(BUSY);
    let events = busy.join("memory.events");
    let text = std::fs::read_to_string(&events).unwrap();
    std::fs::write(&events, text.replace("oom_kill 0", "oom_kill 2")).unwrap();
    let new = dir.path().join("sys/fs/cgroup/system.slice/new.service");
    std::fs::create_dir(&new).unwrap();
    col.rescan_soon();
    let second = col.sweep();
    let kinds: Vec<(EventKind, &str, u64)> = second
        .events
        .iter()
        .map(|e| (e.kind, e.id.as_str(), e.count))
        .collect();
    let busy_id = format!("{POD}/{BUSY}");
    assert!(
        kinds.contains(&(EventKind::OomKill, busy_id.as_str(), 2)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(EventKind::Started, "/system.slice/new.service", 1)),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let oom = second
        .events
        .iter()
        .find(|e| e.kind == EventKind::OomKill)
        .unwrap();
    assert_eq!(oom.runtime, Some(Runtime::Containerd));
    assert!(oom.container_id.as_deref().unwrap().starts_with("4f1c2e9a"));

    std::fs::remove_dir(&new).unwrap();
    col.rescan_soon();
    let third = col.sweep();
    let stopped: Vec<_> = third
        .events
        .iter()
        .map(|e| (e.kind, e.id.as_str()))
        .collect();
    assert_eq!(
        stopped,
        vec![(EventKind::Stopped, "/system.slice/new.service")]
    );
}

/// Without readable namespace links (no ptrace rights), the inode of `net/dev`, one per
/// namespace, tells the host's namespace apart.
#[test]
fn host_namespace_by_net_dev_inode_without_links() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let p = dir.path().join("proc");
    std::fs::remove_file(p.join("25168/ns/net")).unwrap();
    std::fs::remove_file(p.join("1/ns/net")).unwrap();
    std::fs::create_dir_all(p.join("1/net")).unwrap();
    // A different namespace: its own file.
    std::fs::copy(p.join("25168/net/dev"), p.join("1/net/dev")).unwrap();
    let s = sweep(dir.path());
    let c = s.get(&format!("/docker/{DOCKER_ID}")).unwrap();
    assert_eq!(c.stats.network.status, NetworkStatus::Own);
    // The same namespace: the same inode.
    std::fs::remove_file(p.join("1/net/dev")).unwrap();
    std::fs::hard_link(p.join("25168/net/dev"), p.join("1/net/dev")).unwrap();
    let s = sweep(dir.path());
    let c = s.get(&format!("/docker/{DOCKER_ID}")).unwrap();
    assert_eq!(c.stats.network.status, NetworkStatus::HostNamespace);
}

/// A cgroup file is read until a short read (the kernel hands a cgroup file's one record over
/// whole); one longer than a read's 4 KiB still comes in whole.
#[test]
fn files_longer_than_one_read_come_whole() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let memory = docker_dir(dir.path(), "memory");
    let stat = std::fs::read_to_string(memory.join("memory.stat")).unwrap();
    // 12 KiB of keys nobody reads before the real ones, so the wanted ones come in the
    // fourth read.
    let pad: String = (0..800).map(|i| format!("padding_{i:05} 1\n")).collect();
    assert!(pad.len() > 8192);
    std::fs::write(memory.join("memory.stat"), pad + &stat).unwrap();
    let s = sweep(dir.path());
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let c = s.get(&format!("/docker/{DOCKER_ID}")).unwrap();
    assert_eq!(c.stats.memory.rss_bytes, Some(61_440));
    assert_eq!(c.stats.memory.cache_bytes, Some(61_882_368));
}

/// A hybrid twin whose CPU time disagrees with v1's (its tasks are elsewhere) is not trusted:
/// usage, user and system come from the v1 files.
#[test]
fn a_twin_that_disagrees_with_v1_is_not_used_for_cpu() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let twin = docker_dir(dir.path(), "unified").join("cpu.stat");
    std::fs::write(
        &twin,
        "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnice_usec 0\n",
    )
    .unwrap();
    let s = sweep(dir.path());
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let c = s.get(&format!("/docker/{DOCKER_ID}")).unwrap();
    assert_eq!(c.stats.cpu.usage_ns, Some(13_696_074_060), "cpuacct.usage");
    // cpuacct.stat's ticks at USER_HZ.
    let tick = 1_000_000_000 / collector_core_user_hz();
    assert_eq!(c.stats.cpu.user_ns, Some(1359 * tick));
    assert_eq!(c.stats.cpu.system_ns, Some(9 * tick));
}

fn collector_core_user_hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).unwrap_or(100)
}
