//! The exporter as a process: flags, endpoints, formats, shutdown, and its series for a real
//! test cgroup (which must vanish from /metrics when the cgroup goes).

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use tests::{samples, Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

fn burner() -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "while :; do :; done"]);
    c
}

/// The exporter sweeping every 200 ms, over one cgroup id only.
fn exporter_for(id: &str, more: &[&str]) -> Exporter {
    let mut args = vec!["--housekeeping.interval", "200ms", "--cgroups.include", id];
    args.extend_from_slice(more);
    Exporter::start(BIN, &args)
}

#[test]
fn serves_a_test_cgroup_and_forgets_it_when_it_goes() {
    let mut cg = TestCgroup::new("ccol-exp");
    cg.set("cpu", "cpu.cfs_quota_us", "50000");
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(128u64 << 20).to_string(),
    );
    cg.spawn(&mut burner());
    let exp = exporter_for(&cg.id, &[]);
    std::thread::sleep(Duration::from_millis(600));
    let r = exp.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let body = r.text();
    let sel = format!("{{id=\"{}\"", cg.id);
    let cpu = samples(&body, "container_cpu_usage_seconds_total");
    let ours: Vec<_> = cpu.iter().filter(|(l, _)| l.contains(&sel)).collect();
    assert_eq!(ours.len(), 1, "{body}");
    assert!(ours[0].0.contains("cpu=\"total\""));
    assert!(ours[0].1 > 0.0);
    let limit = samples(&body, "container_spec_memory_limit_bytes");
    assert!(
        limit
            .iter()
            .any(|(l, v)| l.contains(&sel) && *v == (128u64 << 20) as f64),
        "{limit:?}"
    );
    let quota = samples(&body, "container_spec_cpu_quota");
    assert!(quota
        .iter()
        .any(|(l, v)| l.contains(&sel) && *v == 50_000.0));
    // Only the included cgroup, and no empty labels anywhere.
    assert!(!body.contains("=\"\""), "empty label values in body");
    assert!(samples(&body, "container_memory_usage_bytes")
        .iter()
        .all(|(l, _)| l.contains(&sel)));
    // Self metrics.
    assert!(samples(&body, "collector_sweeps_total")[0].1 >= 1.0);
    assert!(samples(&body, "process_resident_memory_bytes")[0].1 > 0.0);
    assert!(samples(&body, "machine_cpu_cores")[0].1 >= 1.0);

    // JSON API.
    let list: serde_json::Value =
        serde_json::from_slice(&exp.get("/api/v1/containers").body).unwrap();
    assert_eq!(list[0]["id"], cg.id.as_str());
    let one = exp.get(&format!("/api/v1/containers{}", cg.id));
    assert_eq!(one.status, 200);
    let one: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    assert!(one["stats"]["cpu"]["usage_ns"].as_u64().unwrap() > 0);
    assert_eq!(exp.get("/api/v1/containers/nope").status, 404);
    assert_eq!(exp.get("/healthz").status, 200);

    // The cgroup goes: its series go at the next sweep.
    let id = cg.id.clone();
    drop(cg);
    std::thread::sleep(Duration::from_millis(800));
    let body = exp.get("/metrics").text();
    assert!(
        !body.contains(&format!("id=\"{id}\"")),
        "stale series remain:\n{body}"
    );
}

#[test]
fn openmetrics_and_gzip_when_asked() {
    let cg = TestCgroup::new("ccol-fmt");
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval",
            "200ms",
            "--cgroups.include",
            &cg.id,
        ],
    );
    let om = exp.get_with(
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    );
    assert!(om
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = om.text();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert!(text.contains("# TYPE container_cpu_usage_seconds counter"));
    let plain = gzipped_metrics(&exp);
    assert!(plain.contains("container_cpu_usage_seconds_total{"));
    // No explicit timestamps: every sample line is `name{labels} value`.
    for l in plain.lines().filter(|l| !l.starts_with('#')) {
        let fields = match l.rsplit_once('}') {
            Some((_, rest)) => rest.split_whitespace().count(),
            None => l.split_whitespace().count() - 1,
        };
        assert_eq!(fields, 1, "{l}");
    }
}

/// Child cgroups made in each of a test cgroup's hierarchies; removed (before their parent,
/// when declared after it) on drop.
struct Children(Vec<Vec<std::path::PathBuf>>);

impl Children {
    fn under(parent: &TestCgroup, n: usize) -> Children {
        Children(
            (0..n)
                .map(|i| {
                    parent
                        .dirs()
                        .iter()
                        .map(|d| {
                            let kid = d.join(format!("c{i}"));
                            std::fs::create_dir(&kid)
                                .unwrap_or_else(|e| panic!("mkdir {}: {e}", kid.display()));
                            kid
                        })
                        .collect()
                })
                .collect(),
        )
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for d in self.0.iter().flatten() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `/metrics` asked for with gzip: it must come gzipped, and whole.
fn gzipped_metrics(exp: &Exporter) -> String {
    let z = exp.get_with("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(z.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&z.body[..])
        .read_to_string(&mut text)
        .expect("a whole gzip stream");
    text
}

/// The series of a body (`name{labels}`), without values, for the `container_` families.
fn container_series(body: &str) -> std::collections::BTreeSet<&str> {
    body.lines()
        .filter(|l| l.starts_with("container_"))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series))
        .collect()
}

#[test]
fn a_large_body_streams_whole_plain_or_gzipped_and_a_client_leaving_stops_it() {
    // 120 containers: about half a megabyte of text, several of the exporter's 64 KiB pieces.
    let parent = TestCgroup::new("ccol-big");
    let kids = Children::under(&parent, 120);
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval",
            "1s",
            "--cgroups.include",
            &parent.id,
            "--log.level",
            "debug",
        ],
    );
    let want = |body: &str| {
        let n = samples(body, "container_memory_usage_bytes").len();
        n == kids.0.len() + 1
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let plain = loop {
        let r = exp.get("/metrics");
        let text = r.text();
        if want(&text) || std::time::Instant::now() > deadline {
            assert_eq!(r.header("transfer-encoding"), Some("chunked"));
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(want(&plain), "not every container in /metrics");
    assert!(plain.len() > 4 * 64 * 1024, "only {} bytes", plain.len());
    // The exporter's own families come after the containers', whole.
    assert!(plain.contains("\ncollector_sweep_duration_seconds"));

    let unzipped = gzipped_metrics(&exp);
    assert_eq!(container_series(&unzipped), container_series(&plain));

    // HEAD: hyper sends no body and drops it, so the writer stops at its first piece.
    let head = tests::http_request(exp.addr, "HEAD", "/metrics", &[], b"");
    assert_eq!(head.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !exp
        .log
        .lock()
        .unwrap()
        .contains("/metrics: the client left")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer went on for a client that left: {}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the next scrape is whole.
    assert!(want(&exp.get("/metrics").text()));
}

#[test]
fn bad_settings_exit_2_naming_the_key() {
    for (args, key) in [
        (
            vec!["--housekeeping.interval", "often"],
            "housekeeping.interval",
        ),
        (vec!["--web.listen-address", "here"], "web.listen-address"),
        (vec!["--cgroups.include", "docker"], "cgroups.include"),
        (vec!["--config.file", "/nonexistent/c.toml"], "config.file"),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let out = Command::new(BIN).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--web.listen-address",
        "--web.telemetry-path",
        "--config.file",
        "--housekeeping.interval",
        "--path.procfs",
        "--path.sysfs",
        "--containers.runtime-only",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let v = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn config_file_applies_and_flags_win() {
    let cg = TestCgroup::new("ccol-cfg");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "web.telemetry-path = \"/m\"\nhousekeeping.interval = \"300ms\"\ncgroups.include = [\"/nonexistent\"]\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let exp = Exporter::start(BIN, &["--config.file", f, "--cgroups.include", &cg.id]);
    let r = exp.get("/m");
    assert_eq!(r.status, 200);
    assert!(r.text().contains(&format!("id=\"{}\"", cg.id)));
    assert_eq!(exp.get("/metrics").status, 404);
}

#[test]
fn sigterm_stops_cleanly_and_snapshot_prints_json() {
    let mut exp = Exporter::start(
        BIN,
        &["--housekeeping.interval", "1s", "--cgroups.include", "/"],
    );
    assert_eq!(exp.get("/healthz").status, 200);
    let st = exp.stop();
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(exp.log.lock().unwrap().contains("SIGTERM"));

    let out = Command::new(BIN)
        .args(["snapshot", "--cgroups.include", "/"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["containers"][0]["id"], "/");
    let out = Command::new(BIN)
        .args(["snapshot", "--format", "prometheus"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("# TYPE container_cpu_usage_seconds_total counter"));
}

/// With `--containers.per-cpu`, usage is served per CPU as cAdvisor serves it: `cpu="cpu00"`
/// and so on for each CPU that has run the container, and no `cpu="total"` (a sum over the
/// family would count it twice). The sum matches the total the JSON API reports.
#[test]
fn per_cpu_usage_on_request() {
    let mut cg = TestCgroup::new("ccol-percpu");
    cg.spawn(&mut burner());
    let exp = exporter_for(&cg.id, &["--containers.per-cpu"]);
    std::thread::sleep(Duration::from_millis(600));
    // Stop the burner, so both reads below see the same figures.
    cg.kill_all();
    std::thread::sleep(Duration::from_millis(500));
    let body = exp.get("/metrics").text();
    let sel = format!("{{id=\"{}\"", cg.id);
    let cpu = samples(&body, "container_cpu_usage_seconds_total");
    let ours: Vec<_> = cpu.iter().filter(|(l, _)| l.contains(&sel)).collect();
    assert!(!ours.is_empty(), "{body}");
    assert!(
        ours.iter().all(|(l, _)| l.contains("cpu=\"cpu")),
        "{ours:?}"
    );
    assert!(!ours.iter().any(|(l, _)| l.contains("cpu=\"total\"")));
    let sum: f64 = ours.iter().map(|(_, v)| *v).sum();
    let id = cg.id.trim_start_matches('/');
    let c: serde_json::Value =
        serde_json::from_slice(&exp.get(&format!("/api/v1/containers/{id}")).body).unwrap();
    let total = c["stats"]["cpu"]["usage_ns"].as_f64().expect("usage_ns") / 1e9;
    assert!(
        total > 0.0 && (sum - total).abs() < 0.01,
        "sum {sum} vs total {total}"
    );
}

#[test]
fn runtime_only_drops_raw_cgroups() {
    let cg = TestCgroup::new("ccol-rawonly");
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval",
            "200ms",
            "--containers.runtime-only",
        ],
    );
    let body = exp.get("/metrics").text();
    assert!(
        !body.contains(&format!("id=\"{}\"", cg.id)),
        "raw cgroup reported"
    );
    // The machine itself is kept.
    assert!(samples(&body, "container_cpu_usage_seconds_total")
        .iter()
        .any(|(l, _)| l.contains("id=\"/\"")));
    let list: serde_json::Value =
        serde_json::from_slice(&exp.get("/api/v1/containers").body).unwrap();
    assert!(
        list.as_array().unwrap().iter().all(|c| c["kind"] != "raw"),
        "{list}"
    );
}

#[test]
fn lifecycle_events_are_served_and_counted() {
    let outer = TestCgroup::new("ccol-events");
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval",
            "200ms",
            "--cgroups.include",
            &outer.id,
        ],
    );
    assert_eq!(exp.get("/healthz").status, 200);
    let inner = outer.dir_containing("memory").join("late");
    std::fs::create_dir(&inner).unwrap();
    let id = format!("{}/late", outer.id);
    std::thread::sleep(Duration::from_millis(700));
    std::fs::remove_dir(&inner).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let events: serde_json::Value =
        serde_json::from_slice(&exp.get("/api/v1/events").body).unwrap();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"] == id.as_str())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["started", "stopped"], "{events}");
    let body = exp.get("/metrics").text();
    let started = samples(&body, "container_events_total");
    assert!(
        started
            .iter()
            .any(|(l, v)| l.contains("event=\"started\"") && *v >= 1.0),
        "{started:?}"
    );
    assert!(
        started
            .iter()
            .any(|(l, v)| l.contains("event=\"stopped\"") && *v >= 1.0),
        "{started:?}"
    );
}
