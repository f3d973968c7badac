//! The shipped rules end to end: a real Prometheus loads deploy/prometheus/rules.yml (unedited,
//! no override needed: the finding alerts have no `for`), scrapes the exporter and sends to a
//! real Alertmanager, whose webhook receiver is a small HTTP server here. A process named like
//! a miner in a test cgroup brings CryptominerSuspected with that cgroup's id; a quiet cgroup
//! beside it brings no alert.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::{Exporter, TestCgroup, SETUP};

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

#[test]
fn a_miner_reaches_the_webhook_with_its_container_and_a_quiet_one_does_not() {
    tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let xmrig = dir.path().join("xmrig");
    std::fs::copy("/bin/sleep", &xmrig).unwrap();
    let mut quiet = TestCgroup::new("ccol-alert-quiet");
    quiet.spawn(Command::new("/bin/sleep").arg("600"));
    // Made now, so the exporter follows it; the miner starts once Prometheus has seen it quiet.
    let mut miner = TestCgroup::new("ccol-alert-miner");
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
    let rules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/rules.yml");
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

    // Let Prometheus see the cgroups quiet for a few scrapes, then start the miner.
    std::thread::sleep(Duration::from_secs(8));
    miner.spawn(Command::new(&xmrig).arg("600"));

    let deadline = Instant::now() + Duration::from_secs(90);
    let found = loop {
        let all = bodies.lock().unwrap().clone();
        if let Some(b) = all
            .iter()
            .find(|b| b.contains("CryptominerSuspected") && b.contains(&miner.id))
        {
            break b.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no CryptominerSuspected for {} reached the webhook in 90 s; got: {all:?}",
            miner.id
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let v: serde_json::Value = serde_json::from_str(&found).expect("webhook JSON");
    let alert = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "CryptominerSuspected")
        .expect("the alert");
    assert_eq!(alert["labels"]["id"], miner.id.as_str());
    assert_eq!(alert["labels"]["kind"], "miner_process");
    assert_eq!(alert["labels"]["job"], "collector-exporter");
    assert_eq!(alert["labels"]["severity"], "critical");
    let desc = alert["annotations"]["description"].as_str().unwrap();
    assert!(desc.contains(&miner.id), "{desc}");
    assert!(alert["annotations"]["runbook"].is_string());
    // A few more evaluations: nothing about the quiet cgroup.
    std::thread::sleep(Duration::from_secs(5));
    for b in bodies.lock().unwrap().iter() {
        assert!(
            !b.contains(&format!("\"{}\"", quiet.id)),
            "an alert about the quiet cgroup: {b}"
        );
    }
}
