//! The InfluxDB sink against real servers: InfluxDB 1.6 (v1 API), VictoriaMetrics (v2 API),
//! an outage with and without the on-disk spool, and misbehaving servers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use collector_core::influx::{Api, InfluxConfig, InfluxSink, Secret};
use collector_core::sink::{RunnerConfig, SinkHandle, SinkRunner};
use collector_core::{Collector, Config, Snapshot};
use tests::servers::{Influxd, Victoria};
use tests::TestCgroup;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn collector(id: &str) -> Collector {
    Collector::new(Config {
        include: vec![id.to_string()],
        ..Config::default()
    })
    .unwrap()
}

fn v1(url: &str, db: &str) -> InfluxConfig {
    let mut c = InfluxConfig::new(
        url,
        Api::V1 {
            database: db.into(),
            retention_policy: None,
            username: None,
            password: None,
        },
    );
    c.host = Some("testhost".into());
    c.timeout = Duration::from_secs(2);
    c
}

fn runner_cfg() -> RunnerConfig {
    RunnerConfig {
        name: "test".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..RunnerConfig::default()
    }
}

/// Waits until the sink has delivered something and has nothing queued.
async fn drained(h: &SinkHandle, within: Duration) {
    let deadline = Instant::now() + within;
    while h.stats.queued.load(Ordering::Relaxed) > 0 || h.stats.sent.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "sink still has {} items queued",
            h.stats.queued.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn series_values(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["results"][0]["series"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn pushes_cpu_and_memory_to_influxdb_v1_with_tags() {
    let mut cg = TestCgroup::new("ccol-influx");
    let mut hold = std::process::Command::new(env!("CARGO_BIN_EXE_hold_memory"));
    hold.arg("8");
    cg.spawn(&mut hold);
    std::thread::sleep(Duration::from_millis(300));
    let db = Influxd::start();
    db.query("", "CREATE DATABASE ccol");
    let mut col = collector(&cg.id);
    let snap = Arc::new(col.sweep());
    rt().block_on(async {
        let h = SinkRunner::spawn(
            InfluxSink::new(v1(&db.url(), "ccol")).unwrap(),
            runner_cfg(),
        )
        .unwrap();
        h.push(snap.clone());
        drained(&h, Duration::from_secs(10)).await;
        assert!(h.stats.sent.load(Ordering::Relaxed) >= 4);
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 0);
        h.shutdown(Duration::from_secs(1)).await;
    });
    let c = snap.get(&cg.id).unwrap();
    let q = format!(
        "SELECT usage_bytes, working_set_bytes, host, runtime FROM container_memory WHERE id = '{}'",
        cg.id
    );
    let v = series_values(&db.query("ccol", &q));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0][1].as_u64(), c.stats.memory.usage_bytes);
    assert_eq!(v[0][2].as_u64(), c.stats.memory.working_set_bytes);
    assert_eq!(v[0][3], "testhost");
    // Timestamps are the sweep's, to the nanosecond.
    let q = format!(
        "SELECT usage_seconds FROM container_cpu WHERE id = '{}'",
        cg.id
    );
    let r = db.query("ccol", &q);
    let v = series_values(&r);
    let got = v[0][1].as_f64().unwrap();
    let want = c.stats.cpu.usage_ns.unwrap() as f64 / 1e9;
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // Tags, not fields: id and container_id are tag keys.
    let keys = db.query("ccol", "SHOW TAG KEYS FROM container_memory");
    let keys: Vec<String> = series_values(&keys)
        .iter()
        .map(|k| k[0].as_str().unwrap_or("").to_string())
        .collect();
    for k in ["container_id", "host", "id"] {
        assert!(keys.contains(&k.to_string()), "{keys:?}");
    }
}

#[test]
fn v2_write_api_against_victoria_metrics() {
    let cg = TestCgroup::new("ccol-vm");
    let vm = Victoria::start();
    let mut col = collector(&cg.id);
    let snap = Arc::new(col.sweep());
    let mut cfg = InfluxConfig::new(
        vm.url(),
        Api::V2 {
            org: "org1".into(),
            bucket: "bucket1".into(),
            token: Secret("secret-token".into()),
        },
    );
    cfg.host = Some("testhost".into());
    rt().block_on(async {
        let h = SinkRunner::spawn(InfluxSink::new(cfg).unwrap(), runner_cfg()).unwrap();
        h.push(snap.clone());
        drained(&h, Duration::from_secs(10)).await;
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 0);
        h.shutdown(Duration::from_secs(1)).await;
    });
    tests::http_get(vm.addr, "/internal/force_flush", &[]);
    let want = snap.get(&cg.id).unwrap().stats.cpu.usage_ns.unwrap() as f64 / 1e9;
    let q = format!(
        "/api/v1/export?match[]={}",
        tests::urlencode(&format!(
            "{{__name__=\"container_cpu_usage_seconds\",id=\"{}\"}}",
            cg.id
        ))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = tests::http_get(vm.addr, &q, &[]).text();
        if let Some(line) = body.lines().next() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["metric"]["host"], "testhost");
            let got = v["values"][0].as_f64().unwrap();
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no series in VictoriaMetrics: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The sink as a process would run it: its own runtime. Dropping it is a kill: tasks stop at
/// once, nothing is flushed, only the spool (if any) remains.
struct Process {
    rt: tokio::runtime::Runtime,
    h: SinkHandle,
}

impl Process {
    fn start(url: &str, cfg: &RunnerConfig) -> Process {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let h = {
            let _g = rt.enter();
            SinkRunner::spawn(InfluxSink::new(v1(url, "ccol")).unwrap(), cfg.clone()).unwrap()
        };
        Process { rt, h }
    }

    fn kill(self) {
        self.rt.shutdown_background();
    }
}

/// Pushes a snapshot every second through an outage of `outage` and returns how many sweeps
/// were pushed and how many reached the database.
fn outage_run(
    db: &mut Influxd,
    cg: &TestCgroup,
    spool: Option<&std::path::Path>,
    outage: Duration,
    kill_midway: bool,
) -> (usize, usize) {
    let mut col = collector(&cg.id);
    let mut cfg = runner_cfg();
    cfg.spool_dir = spool.map(|p| p.to_path_buf());
    let url = db.url();
    let mut p = Process::start(&url, &cfg);
    let mut pushed = 0;
    let tick = |p: &Process, col: &mut Collector| {
        let s: Snapshot = col.sweep();
        p.h.push(Arc::new(s));
        std::thread::sleep(Duration::from_secs(1));
    };
    for _ in 0..3 {
        tick(&p, &mut col);
        pushed += 1;
    }
    db.stop();
    let t = Instant::now();
    let mut killed = false;
    while t.elapsed() < outage {
        tick(&p, &mut col);
        pushed += 1;
        if kill_midway && !killed && t.elapsed() > outage / 2 {
            p.kill();
            p = Process::start(&url, &cfg);
            killed = true;
        }
    }
    db.resume();
    for _ in 0..3 {
        tick(&p, &mut col);
        pushed += 1;
    }
    p.rt.block_on(drained(&p.h, Duration::from_secs(30)));
    let q = format!(
        "SELECT count(usage_bytes) FROM container_memory WHERE id = '{}'",
        cg.id
    );
    let v = series_values(&db.query("ccol", &q));
    let arrived = v.first().and_then(|r| r[1].as_u64()).unwrap_or(0) as usize;
    p.kill();
    (pushed, arrived)
}

#[test]
fn a_minute_long_outage_loses_nothing() {
    let cg = TestCgroup::new("ccol-outage");
    let mut db = Influxd::start();
    db.query("", "CREATE DATABASE ccol");
    let (pushed, arrived) = outage_run(&mut db, &cg, None, Duration::from_secs(60), false);
    assert_eq!(arrived, pushed, "pushed {pushed} sweeps, {arrived} arrived");
}

#[test]
fn spool_survives_a_restart_during_an_outage() {
    let cg = TestCgroup::new("ccol-spool");
    let mut db = Influxd::start();
    db.query("", "CREATE DATABASE ccol");
    let spool = tempfile::tempdir().unwrap();
    let (pushed, arrived) = outage_run(
        &mut db,
        &cg,
        Some(spool.path()),
        Duration::from_secs(8),
        true,
    );
    assert_eq!(arrived, pushed, "pushed {pushed} sweeps, {arrived} arrived");
}
