//! The process group on real cgroups: processes, their open descriptors and sockets, and the
//! first process's open-files limit, with workloads whose every descriptor the test knows.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use collector_core::{Collector, Config, Snapshot};
use tests::{find, require_root, urlencode, Exporter, TestCgroup};

fn collector(id: &str) -> Collector {
    Collector::new(Config {
        include: vec![id.to_string()],
        process_interval: Duration::ZERO,
        socket_states: true,
        ..Config::default()
    })
    .expect("cgroup hierarchy")
}

/// `hold_fds` with its stdio on /dev/null: 3 descriptors, then `files` files, `tcp` listeners
/// and `udp` sockets; its soft open-files limit set to `nofile`. Waits until it is ready.
fn spawn_holder(cg: &mut TestCgroup, nofile: u64, files: u32, tcp: u32, udp: u32) -> u32 {
    let cmd = Command::new(env!("CARGO_BIN_EXE_hold_fds"));
    spawn_ready(cg, cmd, [nofile, files.into(), tcp.into(), udp.into(), 0])
}

/// Runs `cmd` (hold_fds, or a wrapper that execs it) with a ready file and `args`.
fn spawn_ready(cg: &mut TestCgroup, mut cmd: Command, args: [u64; 5]) -> u32 {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ready = dir.path().join("ready");
    cmd.arg(&ready)
        .args(args.map(|n| n.to_string()))
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

    // A second process holding its stdio only: three more descriptors, no socket; its own
    // open-files limit is not the container's (the first process's is).
    spawn_holder(&mut cg, 888, 0, 0, 0);
    let p = processes(&col.sweep(), &cg.id);
    assert_eq!(p.count, Some(2), "{p:?}");
    assert_eq!(p.fds, Some(11 + 3), "{p:?}");
    assert_eq!(p.sockets, Some(3), "{p:?}");
    assert_eq!(p.max_open_files, Some(777), "{p:?}");
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
    for l in text
        .lines()
        .filter(|l| l.contains(&format!("id=\"{}\"", cg.id)))
    {
        assert!(!l.contains("pid=") && !l.contains("comm="), "{l}");
    }
}

/// The TCP and UDP tables of the container's own network namespace, by state: two listeners,
/// one connection to the first (an established pair), one UDP socket, nothing over IPv6.
#[test]
fn socket_states_of_the_containers_namespace() {
    require_root();
    let ns = tests::NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-socks");
    let cmd = tests::NetnsPair::exec(&ns.a, env!("CARGO_BIN_EXE_hold_fds"), &[]);
    spawn_ready(&mut cg, cmd, [1000, 0, 2, 1, 1]);
    let mut col = collector(&cg.id);
    let snap = col.sweep();
    let s = &find(&snap, &cg.id).stats.sockets;
    let tcp = s.tcp.clone().expect("net/tcp read");
    assert_eq!((tcp.listen, tcp.established), (2, 2), "{tcp:?}");
    assert_eq!(tcp.time_wait + tcp.syn_sent + tcp.close_wait, 0, "{tcp:?}");
    let udp = s.udp.clone().expect("net/udp read");
    assert_eq!(udp.listen, 1, "{udp:?}");
    assert_eq!(s.tcp6.clone().map(|t| t.listen + t.established), Some(0));
    assert_eq!(s.udp6.clone().map(|u| u.listen), Some(0));

    let text = collector_core::prometheus::render(
        &snap,
        &Default::default(),
        collector_core::prometheus::Format::PrometheusText,
    );
    let listen = text
        .lines()
        .find(|l| {
            l.starts_with("container_network_tcp_usage_total{")
                && l.contains(&format!("id=\"{}\"", cg.id))
                && l.contains("tcp_state=\"listen\"")
        })
        .expect("the listen series");
    assert!(listen.ends_with(" 2"), "{listen}");
}

/// A container in the host's network namespace gets no socket states: they would be the
/// host's.
#[test]
fn no_socket_states_in_the_hosts_namespace() {
    require_root();
    let mut cg = TestCgroup::new("ccol-sockh");
    spawn_holder(&mut cg, 1000, 0, 1, 0);
    let s = find(&collector(&cg.id).sweep(), &cg.id)
        .stats
        .sockets
        .clone();
    assert_eq!(s, Default::default());
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

/// The exporter's `/api/v1/containers/{id}/processes`: the one process of a test cgroup, with
/// its pid, name, binary and descriptors, by raw path and percent-encoded; an unknown
/// container is a 404 with a JSON error.
#[test]
fn the_exporter_lists_a_containers_processes() {
    require_root();
    let mut cg = TestCgroup::new("ccol-papi");
    let pid = spawn_holder(&mut cg, 1000, 2, 1, 1);
    let exp = Exporter::start(
        env!("CARGO_BIN_EXE_exporter"),
        &[
            "--housekeeping.interval",
            "200ms",
            "--cgroups.include",
            &cg.id,
        ],
    );
    let raw = exp.get(&format!("/api/v1/containers{}/processes", cg.id));
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert_eq!(raw.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&raw.body).expect("JSON");
    assert_eq!(v["id"], cg.id.as_str());
    assert_eq!(v["truncated"], false);
    let procs = v["processes"].as_array().expect("a process array");
    assert_eq!(procs.len(), 1, "{v}");
    let p = &procs[0];
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_hold_fds")).expect("hold_fds");
    assert_eq!(p["pid"], pid);
    assert_eq!(p["ppid"], std::process::id());
    assert_eq!(p["comm"], "hold_fds");
    assert_eq!(p["exe"], exe.to_string_lossy().as_ref());
    assert!(
        p["cmdline"]
            .as_str()
            .is_some_and(|c| c.starts_with(env!("CARGO_BIN_EXE_hold_fds"))),
        "{p}"
    );
    // stdio, two files, a listener and a UDP socket.
    assert_eq!(p["fds"], 3 + 2 + 1 + 1, "{p}");
    assert_eq!(p["sockets"], 2, "{p}");
    assert_eq!(p["uid"], 0);
    assert_eq!(p["user"], "root");
    assert_eq!(p["state"], "S");
    assert!(p["rss_bytes"].as_u64().is_some_and(|b| b > 0), "{p}");

    let encoded = exp.get(&format!(
        "/api/v1/containers/{}/processes",
        urlencode(&cg.id)
    ));
    assert_eq!(encoded.status, 200, "{}", encoded.text());
    let again: serde_json::Value = serde_json::from_slice(&encoded.body).expect("JSON");
    assert_eq!(again["processes"][0]["pid"], pid);

    let unknown = exp.get("/api/v1/containers/docker/nope/processes");
    assert_eq!(unknown.status, 404);
    let err: serde_json::Value = serde_json::from_slice(&unknown.body).expect("a JSON error");
    assert!(
        err["error"].as_str().is_some_and(|e| e.contains("nope")),
        "{err}"
    );

    cg.kill(pid);
    drop(exp);
    cg.remove();
}
