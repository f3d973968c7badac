//! A real Prometheus scrapes the exporter: the CPU rate of a test cgroup with a burning child
//! comes out near its quota through the query API, and a removed cgroup's series go stale.
//! Also `promtool check metrics` on a real scrape.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{http_get, Exporter, TestCgroup, SETUP};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

struct Prometheus {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: ccol\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], tests::servers::free_port()));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus not runnable ({e}); install it with `{SETUP}`"));
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// An instant query's result vector.
    fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", encode(q));
        let r = http_get(self.addr, &path, &[]);
        if r.status != 200 {
            return Vec::new();
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if tests::try_http_request(self.addr, "GET", "/-/ready", &[], &[])
                .is_ok_and(|r| r.status == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("prometheus did not become ready on {}", self.addr);
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_sees_the_burn_rate_and_staleness() {
    let mut cg = TestCgroup::new("ccol-prom");
    cg.set("cpu", "cpu.cfs_quota_us", "50000");
    cg.set("cpu", "cpu.cfs_period_us", "100000");
    let mut burn = Command::new("sh");
    burn.args(["-c", "while :; do :; done"]);
    cg.spawn(&mut burn);
    let exp = Exporter::start(
        BIN,
        &["--housekeeping.interval", "1s", "--cgroups.include", &cg.id],
    );
    let prom = Prometheus::start(exp.addr);
    prom.wait_ready();

    let q = format!(
        "rate(container_cpu_usage_seconds_total{{id=\"{}\"}}[5s])",
        cg.id
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut rate = None;
    // Wait for a window of 5 s full of samples, then take the rate.
    let started = Instant::now();
    while Instant::now() < deadline {
        let res = prom.query(&q);
        if let Some(v) = res
            .first()
            .and_then(|r| r["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
        {
            if started.elapsed() > Duration::from_secs(12) {
                rate = Some(v);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let rate = rate.unwrap_or_else(|| panic!("no rate for {} within 40 s", cg.id));
    // The quota allows half a CPU; the burner uses all of it.
    assert!(
        (0.4..=0.56).contains(&rate),
        "rate {rate}, expected about 0.5"
    );

    // Remove the cgroup: Prometheus marks its series stale at the next scrape.
    let id = cg.id.clone();
    drop(cg);
    let sel = format!("container_cpu_usage_seconds_total{{id=\"{id}\"}}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if prom.query(&sel).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "series of {id} still live 15 s after removal"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The target itself stayed healthy throughout.
    let up = prom.query("up");
    assert_eq!(
        up.first().and_then(|r| r["value"][1].as_str()),
        Some("1"),
        "{up:?}"
    );
}

#[test]
fn promtool_accepts_a_real_scrape() {
    let cg = TestCgroup::new("ccol-lint");
    let exp = Exporter::start(BIN, &["--housekeeping.interval", "500ms"]);
    let body = exp.get("/metrics").body;
    assert!(String::from_utf8_lossy(&body).contains(&format!("id=\"{}\"", cg.id)));
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool not runnable ({e}); install it with `{SETUP}`"));
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
