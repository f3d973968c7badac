//! The process group on real cgroups: processes, their open descriptors and sockets, and the
//! first process's open-files limit, with workloads whose every descriptor the test knows.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use collector_core::{Collector, Config, Snapshot};
use tests::{find, require_root, TestCgroup};

fn collector(id: &str) -> Collector {
    Collector::new(Config {
        include: vec![id.to_string()],
        process_interval: Duration::ZERO,
        ..Config::default()
    })
    .expect("cgroup hierarchy")
}

/// `hold_fds` with its stdio on /dev/null: 3 descriptors, then `files` files, `tcp` listeners
/// and `udp` sockets; its soft open-files limit set to `nofile`. Waits until it is ready.
fn spawn_holder(cg: &mut TestCgroup, nofile: u64, files: u32, tcp: u32, udp: u32) -> u32 {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ready = dir.path().join("ready");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hold_fds"));
    cmd.arg(&ready)
        .args([nofile, files.into(), tcp.into(), udp.into()].map(|n: u64| n.to_string()))
        .stderr(Stdio::null());
    let pid = cg.spawn(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "hold_fds did not get ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    pid
}

fn processes(s: &Snapshot, id: &str) -> collector_core::ProcessStats {
    find(s, id).stats.processes.clone()
}

#[test]
fn processes_descriptors_sockets_and_the_open_files_limit() {
    require_root();
    let mut cg = TestCgroup::new("ccol-procs");
    spawn_holder(&mut cg, 777, 5, 2, 1);
    let mut col = collector(&cg.id);
    let p = processes(&col.sweep(), &cg.id);
    assert_eq!(p.count, Some(1), "{p:?}");
    assert_eq!(p.fds, Some(3 + 5 + 2 + 1), "{p:?}");
    assert_eq!(p.sockets, Some(3), "{p:?}");
    assert_eq!(p.max_open_files, Some(777), "{p:?}");

    // A second process holding its stdio only: three more descriptors, no socket.
    spawn_holder(&mut cg, 777, 0, 0, 0);
    let p = processes(&col.sweep(), &cg.id);
    assert_eq!(p.count, Some(2), "{p:?}");
    assert_eq!(p.fds, Some(11 + 3), "{p:?}");
    assert_eq!(p.sockets, Some(3), "{p:?}");
}

/// Served under cAdvisor's names, with no pid, name or address as a label.
#[test]
fn the_exposition_has_cadvisors_process_families() {
    require_root();
    let mut cg = TestCgroup::new("ccol-procx");
    spawn_holder(&mut cg, 4321, 1, 1, 0);
    let mut col = collector(&cg.id);
    let snap = col.sweep();
    let text = collector_core::prometheus::render(
        &snap,
        &Default::default(),
        collector_core::prometheus::Format::PrometheusText,
    );
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("id=\"{}\"", cg.id)))
            .unwrap_or_else(|| panic!("no {name} for {}", cg.id))
            .to_string()
    };
    assert!(line("container_processes{").ends_with(" 1"));
    assert!(line("container_file_descriptors{").ends_with(" 5"));
    assert!(line("container_sockets{").ends_with(" 1"));
    let ulimit = line("container_ulimits_soft{");
    assert!(ulimit.contains("ulimit=\"max_open_files\"") && ulimit.ends_with(" 4321"));
}

/// With the process group off nothing is read.
#[test]
fn off_reads_nothing() {
    require_root();
    let mut cg = TestCgroup::new("ccol-procoff");
    spawn_holder(&mut cg, 1000, 1, 0, 0);
    let mut col = Collector::new(Config {
        include: vec![cg.id.clone()],
        processes: false,
        ..Config::default()
    })
    .expect("cgroup hierarchy");
    assert_eq!(processes(&col.sweep(), &cg.id), Default::default());
    assert_eq!(processes(&collector(&cg.id).sweep(), &cg.id).count, Some(1));
}
