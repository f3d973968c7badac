//! The exporter pushing to a real InfluxDB 1.6 from its config file: values agree with what
//! /metrics says, and with the spool on, a kill and restart during an outage loses nothing.

use std::time::{Duration, Instant};

use tests::servers::Influxd;
use tests::{samples, Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

fn config(
    dir: &std::path::Path,
    db: &Influxd,
    spool: Option<&std::path::Path>,
) -> std::path::PathBuf {
    let p = dir.join("exporter.toml");
    let spool = spool
        .map(|s| format!("spool_dir = \"{}\"\n", s.display()))
        .unwrap_or_default();
    std::fs::write(
        &p,
        format!(
            "housekeeping.interval = \"1s\"\n\n[[sinks]]\ntype = \"influxdb\"\nname = \"main\"\nurl = \"{}\"\ndatabase = \"ccol\"\ninterval = \"1s\"\ntimeout = \"2s\"\nhost = \"testhost\"\n{spool}",
            db.url()
        ),
    )
    .unwrap();
    p
}

fn values(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["results"][0]["series"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn pushed_values_agree_with_metrics() {
    let mut cg = TestCgroup::new("ccol-expinflux");
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(96u64 << 20).to_string(),
    );
    let mut hold = std::process::Command::new(env!("CARGO_BIN_EXE_hold_memory"));
    hold.arg("12");
    cg.spawn(&mut hold);
    std::thread::sleep(Duration::from_millis(300));
    let db = Influxd::start();
    db.query("", "CREATE DATABASE ccol");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &db, None);
    let exp = Exporter::start(
        BIN,
        &[
            "--config.file",
            cfg.to_str().unwrap(),
            "--cgroups.include",
            &cg.id,
        ],
    );
    // Wait for two pushes.
    let q = format!(
        "SELECT count(usage_bytes) FROM container_memory WHERE id = '{}'",
        cg.id
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while values(&db.query("ccol", &q))
        .first()
        .and_then(|r| r[1].as_u64())
        .unwrap_or(0)
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no points arrived; exporter log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let body = exp.get("/metrics").text();
    let sel = format!("id=\"{}\"", cg.id);
    let metric = |name: &str| {
        samples(&body, name)
            .into_iter()
            .find(|(l, _)| l.contains(&sel))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let last = |field: &str, m: &str| {
        let v = values(&db.query(
            "ccol",
            &format!("SELECT last({field}) FROM {m} WHERE id = '{}'", cg.id),
        ));
        v[0][1].as_f64().unwrap()
    };
    // The holder sleeps: CPU time and limit are steady, memory nearly so.
    assert!(
        (last("usage_seconds", "container_cpu") - metric("container_cpu_usage_seconds_total"))
            .abs()
            < 1e-3
    );
    assert_eq!(
        last("limit_bytes", "container_memory"),
        metric("container_spec_memory_limit_bytes")
    );
    let (a, b) = (
        last("usage_bytes", "container_memory"),
        metric("container_memory_usage_bytes"),
    );
    // v1's usage is charged in per-CPU batches of 64 pages (256 KiB), which drain at their
    // own pace: a sleeping process's usage moves by up to that much a CPU.
    let slack = 2.0 * 256.0 * 1024.0 + 64.0 * 1024.0;
    assert!((a - b).abs() <= slack, "influx {a} vs /metrics {b}");
    assert!(a >= (12u64 << 20) as f64);
    // Tags.
    let v = values(&db.query(
        "ccol",
        &format!(
            "SELECT usage_bytes, host, container_id FROM container_memory WHERE id = '{}' LIMIT 1",
            cg.id
        ),
    ));
    assert_eq!(v[0][2], "testhost");
    assert_eq!(
        v[0][3],
        cg.id.as_str(),
        "a raw cgroup's container_id is its path"
    );
    // The sink's own series.
    let sent = samples(&body, "collector_sink_sent_total");
    assert!(
        sent.iter().any(|(l, v)| l.contains("sink=\"main\"")
            && l.contains("type=\"influxdb\"")
            && *v > 0.0),
        "{sent:?}"
    );
}

#[test]
fn spool_survives_a_kill_during_an_outage() {
    let cg = TestCgroup::new("ccol-expspool");
    let mut db = Influxd::start();
    db.query("", "CREATE DATABASE ccol");
    db.stop();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let cfg = config(dir.path(), &db, Some(&spool));
    let args = [
        "--config.file",
        cfg.to_str().unwrap(),
        "--cgroups.include",
        &cg.id,
    ];
    let mut first = Exporter::start(BIN, &args);
    std::thread::sleep(Duration::from_secs(5));
    let sweeps =
        |e: &Exporter| samples(&e.get("/metrics").text(), "collector_sweeps_total")[0].1 as u64;
    let before_kill = sweeps(&first);
    // A sweep counted a moment ago may still be on its way into the spool (the sink task
    // encodes and writes it after the sweep thread hands it over); a SIGKILL then can lose
    // it, and nothing could save it. Kill in the middle of the interval, so every counted
    // sweep has had time to be spooled; one more may sneak in before the kill.
    std::thread::sleep(Duration::from_millis(400));
    // SIGKILL: no chance to flush anything.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed_at = std::time::SystemTime::now();
    assert!(spool.read_dir().unwrap().count() > 0, "nothing spooled");
    let second = Exporter::start(BIN, &args);
    std::thread::sleep(Duration::from_secs(3));
    db.resume();
    // Everything of both runs arrives.
    let q = |cond: &str| {
        let v = values(&db.query(
            "ccol",
            &format!(
                "SELECT count(usage_seconds) FROM container_cpu WHERE id = '{}' {cond}",
                cg.id
            ),
        ));
        v.first().and_then(|r| r[1].as_u64()).unwrap_or(0)
    };
    let kill_ns = killed_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut first_run = 0;
    while Instant::now() < deadline {
        first_run = q(&format!("AND time < {kill_ns}"));
        if first_run >= before_kill && q(&format!("AND time >= {kill_ns}")) >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        (before_kill..=before_kill + 1).contains(&first_run),
        "first run swept {before_kill} times before the kill, {first_run} points arrived; log:\n{}",
        second.log.lock().unwrap()
    );
    assert!(q(&format!("AND time >= {kill_ns}")) >= 2);
}

/// A process named like a miner: the `container_security_findings` point counts it, and its
/// finding event (`container_events`, `event=miner_process`) carries the process: pid,
/// executable and command line, typed as the schema says.
#[test]
fn a_miner_finding_reaches_influxdb() {
    let bin = tempfile::tempdir().unwrap();
    let xmrig = bin.path().join("xmrig");
    std::fs::copy("/bin/sleep", &xmrig).unwrap();
    let mut cg = TestCgroup::new("ccol-expinflux-sec");
    let pid = cg.spawn(std::process::Command::new(&xmrig).arg("600"));
    let db = Influxd::start();
    db.query("", "CREATE DATABASE ccol");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &db, None);
    let exp = Exporter::start(
        BIN,
        &[
            "--config.file",
            cfg.to_str().unwrap(),
            "--cgroups.include",
            &cg.id,
        ],
    );
    let q = format!(
        "SELECT pid, ppid, uid, comm, exe, cmdline, source, \"count\" FROM container_events \
         WHERE id = '{}' AND event = 'miner_process'",
        cg.id
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = values(&db.query("ccol", &q));
        if !rows.is_empty() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no finding event arrived; exporter log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(rows.len(), 1, "one finding, one point: {rows:?}");
    let r = &rows[0];
    let exe = xmrig.to_str().unwrap();
    assert_eq!(r[1].as_u64(), Some(u64::from(pid)), "{r:?}");
    assert_eq!(r[2].as_u64(), Some(u64::from(std::process::id())), "{r:?}");
    assert_eq!(r[3].as_u64(), Some(0), "{r:?}");
    assert_eq!(r[4], "xmrig", "{r:?}");
    assert_eq!(r[5], exe, "{r:?}");
    assert_eq!(r[6], format!("{exe} 600").as_str(), "{r:?}");
    assert_eq!(
        r[7], "poll",
        "present before the exporter: found by its first walk"
    );
    assert_eq!(r[8].as_u64(), Some(1), "{r:?}");
    // The fields' types: integers for the ids, strings for the rest.
    let keys = db.query("ccol", "SHOW FIELD KEYS FROM container_events");
    let types: Vec<(String, String)> = values(&keys)
        .iter()
        .filter_map(|k| Some((k[0].as_str()?.to_string(), k[1].as_str()?.to_string())))
        .collect();
    for (field, ty) in [
        ("pid", "integer"),
        ("ppid", "integer"),
        ("uid", "integer"),
        ("count", "integer"),
        ("exe", "string"),
        ("cmdline", "string"),
        ("comm", "string"),
        ("source", "string"),
    ] {
        assert!(
            types.iter().any(|(f, t)| f == field && t == ty),
            "{field} {ty}: {types:?}"
        );
    }
    // The counts, on the metrics pushes.
    let q = format!(
        "SELECT last(miner_process), last(exec_from_writable_layer), last(unexpected_process) \
         FROM container_security_findings WHERE id = '{}'",
        cg.id
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = loop {
        let v = values(&db.query("ccol", &q));
        if let Some(r) = v.first() {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no container_security_findings point; exporter log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(counts[1].as_u64(), Some(1), "{counts:?}");
    assert_eq!(counts[2].as_u64(), Some(0), "{counts:?}");
    assert_eq!(counts[3].as_u64(), Some(0), "{counts:?}");
    let body = exp.get("/metrics").text();
    assert!(
        samples(&body, "container_security_findings_total")
            .iter()
            .any(|(l, v)| l.contains(&format!("id=\"{}\"", cg.id))
                && l.contains("kind=\"miner_process\"")
                && *v == 1.0),
        "{body}"
    );
}
