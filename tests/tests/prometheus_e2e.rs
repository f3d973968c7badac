//! A real Prometheus scrapes the exporter: the CPU rate of a test cgroup with a burning child
//! comes out near its quota through the query API, and a removed cgroup's series go stale.
//! Also `promtool check metrics` on a real scrape.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::servers::Prometheus;
use tests::{http_get, Exporter, TestCgroup, SETUP};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

/// An instant query's result vector (empty when Prometheus refused it).
fn query(prom: &Prometheus, q: &str) -> Vec<serde_json::Value> {
    let path = format!("/api/v1/query?query={}", tests::urlencode(q));
    let r = http_get(prom.addr, &path, &[]);
    if r.status != 200 {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
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

    let q = format!(
        "rate(container_cpu_usage_seconds_total{{id=\"{}\"}}[5s])",
        cg.id
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut rate = None;
    // Wait for a window of 5 s full of samples, then take the rate.
    let started = Instant::now();
    while Instant::now() < deadline {
        let res = query(&prom, &q);
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
        if query(&prom, &sel).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "series of {id} still live 15 s after removal"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The target itself stayed healthy throughout.
    let up = query(&prom, "up");
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
