//! The remote-write sink against real receivers: the exporter pushes to Prometheus (its
//! remote-write receiver on) and to VictoriaMetrics at once, and the series queried back are
//! /metrics' own (its `collector_*` too), with the external labels; a removed cgroup's series
//! go stale at once. An
//! outage of VictoriaMetrics with the exporter killed in it loses nothing (the spool). A fake
//! receiver shows a 400 dropping only its batch and a 429's Retry-After being waited out.
//!
//! VictoriaMetrics takes the outage test: Prometheus' receiver refuses samples older than its
//! head block (out of order), so an outage's backlog would be refused there by design.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector_core::remote_write::proto::WriteRequest;
use collector_core::remote_write::{RemoteWriteConfig, RemoteWriteSink};
use collector_core::sink::{RunnerConfig, SinkRunner};
use prost::Message;
use serde_json::Value;
use tests::servers::{Prometheus, Victoria};
use tests::{samples, Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

/// A sink table pushing to `url`.
fn sink(name: &str, url: &str, spool: Option<&Path>) -> String {
    let spool = spool
        .map(|s| format!("spool_dir = \"{}\"\n", s.display()))
        .unwrap_or_default();
    format!(
        "\n[[sinks]]\ntype = \"remote_write\"\nname = \"{name}\"\nurl = \"{url}\"\n\
         interval = \"500ms\"\ntimeout = \"2s\"\n{spool}\
         headers = {{ \"X-Scope-OrgID\" = \"tenant-1\" }}\n\
         external_labels = {{ cluster = \"test\", node = \"${{CCOL_RW_NODE}}\" }}\n"
    )
}

/// Starts the exporter on `sinks`, following only `cgroups`; the node label comes from the
/// environment, as the downward API gives it.
fn exporter(dir: &Path, sinks: &str, cgroups: &[&str]) -> Exporter {
    let cfg = dir.join("exporter.toml");
    std::fs::write(&cfg, format!("housekeeping.interval = \"1s\"\n{sinks}")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env("CCOL_RW_NODE", "node-1")
        .args(["--web.listen-address", "127.0.0.1:0", "--config.file"])
        .arg(&cfg);
    for c in cgroups {
        cmd.args(["--cgroups.include", c]);
    }
    Exporter::start_command(cmd)
}

/// An instant query's result vector, on either server (empty on any failure).
fn query(addr: SocketAddr, q: &str) -> Vec<Value> {
    let path = format!("/api/v1/query?query={}", tests::urlencode(q));
    let Ok(r) = tests::try_http_request(addr, "GET", &path, &[], &[]) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The labels of a result, `__name__` included.
fn result_labels(r: &Value) -> BTreeMap<String, String> {
    r["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn result_value(r: &Value) -> f64 {
    r["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `name{a="b",...}` of a /metrics line as labels, `__name__` included.
fn line_labels(series: &str) -> BTreeMap<String, String> {
    let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
    let mut out = BTreeMap::from([("__name__".to_string(), name.to_string())]);
    let mut chars = rest.chars();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let key = key.trim_start_matches(',');
        if key.is_empty() || key == "}" {
            return out;
        }
        assert_eq!(chars.next(), Some('"'), "{series}");
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => v.extend(chars.next()),
                '"' => break,
                c => v.push(c),
            }
        }
        out.insert(key.to_string(), v);
    }
}

/// Waits until `q` returns something on `addr`.
fn wait_for(addr: SocketAddr, q: &str, within: Duration, exp: &Exporter) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let r = query(addr, q);
        if !r.is_empty() {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{q}: nothing on {addr}; exporter log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_and_victoria_metrics_get_the_metrics_series_and_staleness() {
    let mut a = TestCgroup::new("ccol-rw-a");
    let mut b = TestCgroup::new("ccol-rw-b");
    a.set(
        "memory",
        "memory.limit_in_bytes",
        &(96u64 << 20).to_string(),
    );
    a.spawn(Command::new(env!("CARGO_BIN_EXE_hold_memory")).arg("12"));
    b.spawn(&mut tests::sleeper());
    std::thread::sleep(Duration::from_millis(300));
    let prom = Prometheus::receiver();
    let vm = Victoria::start();
    let dir = tempfile::tempdir().unwrap();
    let sinks = sink("prom", &format!("{}/api/v1/write", prom.url()), None)
        + &sink("vm", &format!("{}/api/v1/write", vm.url()), None);
    let exp = exporter(dir.path(), &sinks, &[&a.id, &b.id]);
    let receivers = [("prometheus", prom.addr), ("victoria-metrics", vm.addr)];
    for (_, addr) in receivers {
        for cg in [&a, &b] {
            let q = format!("container_memory_working_set_bytes{{id=\"{}\"}}", cg.id);
            wait_for(addr, &q, Duration::from_secs(20), &exp);
        }
    }
    // Let a push land after the scrape below (the sink pushes every sweep).
    let body = exp.get("/metrics").text();
    std::thread::sleep(Duration::from_millis(1500));
    let external = [("cluster", "test"), ("node", "node-1")];
    for (server, addr) in receivers {
        for family in [
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "container_spec_memory_limit_bytes",
            "container_threads",
        ] {
            let lines: Vec<_> = samples(&body, family)
                .into_iter()
                .filter(|(l, _)| l.contains(&format!("id=\"{}\"", a.id)))
                .collect();
            assert!(!lines.is_empty(), "{family} not on /metrics");
            let pushed = query(addr, &format!("{family}{{id=\"{}\"}}", a.id));
            assert_eq!(pushed.len(), lines.len(), "{server} {family}: {pushed:?}");
            for (series, v) in lines {
                let mut want = line_labels(series);
                for (k, x) in external {
                    want.insert(k.into(), x.into());
                }
                let got = pushed
                    .iter()
                    .find(|r| result_labels(r) == want)
                    .unwrap_or_else(|| panic!("{server}: {want:?} not among {pushed:?}"));
                let g = result_value(got);
                // The holder sleeps: its CPU time, limit and threads are steady; v1's memory
                // usage moves by the per-CPU charge batches (256 KiB a CPU).
                let slack = if family.contains("memory_working") {
                    2.0 * 256.0 * 1024.0 + 64.0 * 1024.0
                } else {
                    1e-3
                };
                assert!((g - v).abs() <= slack, "{server} {family}: {g} vs {v}");
            }
        }
        let ws = query(
            addr,
            &format!("container_memory_working_set_bytes{{id=\"{}\"}}", a.id),
        );
        assert!(result_value(&ws[0]) >= (12u64 << 20) as f64, "{ws:?}");
    }
    // The exporter's own series are pushed too.
    for (server, addr) in receivers {
        let sweeps = query(addr, "collector_sweeps_total");
        assert_eq!(sweeps.len(), 1, "{server}: {sweeps:?}");
        let want: BTreeMap<String, String> = [
            ("__name__", "collector_sweeps_total"),
            ("cluster", "test"),
            ("node", "node-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(result_labels(&sweeps[0]), want, "{server}");
        assert!(result_value(&sweeps[0]) >= 2.0, "{server}: {sweeps:?}");
        let q = "collector_sink_sent_total{sink=\"prom\",type=\"remote_write\"}";
        assert!(result_value(&wait_for(addr, q, Duration::from_secs(5), &exp)[0]) > 0.0);
    }
    // The sink's own series.
    let body = exp.get("/metrics").text();
    for name in ["prom", "vm"] {
        let sent = samples(&body, "collector_sink_sent_total");
        assert!(
            sent.iter()
                .any(|(l, v)| l.contains(&format!("sink=\"{name}\""))
                    && l.contains("type=\"remote_write\"")
                    && *v > 0.0),
            "{sent:?}"
        );
        let failed = samples(&body, "collector_sink_failed_total");
        assert!(
            failed
                .iter()
                .any(|(l, v)| l.contains(&format!("sink=\"{name}\"")) && *v == 0.0),
            "{failed:?}"
        );
    }
    // b goes: its series go stale at once (without a marker Prometheus would return them for
    // five minutes), a's stay.
    b.remove();
    let deadline = Instant::now() + Duration::from_secs(20);
    for (server, addr) in receivers {
        let qb = format!("container_memory_working_set_bytes{{id=\"{}\"}}", b.id);
        let qa = format!("container_memory_working_set_bytes{{id=\"{}\"}}", a.id);
        while !query(addr, &qb).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{server} still returns the removed cgroup; exporter log:\n{}",
                exp.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        assert_eq!(query(addr, &qa).len(), 1, "{server}");
    }
}

/// Every timestamp VictoriaMetrics holds for `series`, in order.
fn exported_timestamps(vm: &Victoria, series: &str) -> Vec<i64> {
    let path = format!("/api/v1/export?match[]={}", tests::urlencode(series));
    let Ok(r) = tests::try_http_request(vm.addr, "GET", &path, &[], &[]) else {
        return Vec::new();
    };
    let mut ts: Vec<i64> = String::from_utf8_lossy(&r.body)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| {
            v["timestamps"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.as_i64())
        })
        .collect();
    ts.sort_unstable();
    ts.dedup();
    ts
}

#[test]
fn an_outage_with_a_kill_in_it_loses_nothing() {
    let cg = TestCgroup::new("ccol-rw-outage");
    let mut vm = Victoria::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let sinks = sink("vm", &format!("{}/api/v1/write", vm.url()), Some(&spool));
    let first = exporter(dir.path(), &sinks, &[&cg.id]);
    let series = format!("container_memory_usage_bytes{{id=\"{}\"}}", cg.id);
    wait_for(vm.addr, &series, Duration::from_secs(20), &first);
    vm.stop();
    let outage = Instant::now();
    let sweeps =
        |e: &Exporter| samples(&e.get("/metrics").text(), "collector_sweeps_total")[0].1 as u64;
    // Most of the outage on the first process, its pushes going to the spool; the second
    // starts late enough that its back-off is still short when the server is back.
    std::thread::sleep(Duration::from_secs(48));
    let before_kill = sweeps(&first);
    // Mid-interval, so every counted sweep has reached the spool (see exporter_influx.rs).
    std::thread::sleep(Duration::from_millis(400));
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let kill_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let second = exporter(dir.path(), &sinks, &[&cg.id]);
    std::thread::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed()));
    vm.resume();
    let deadline = Instant::now() + Duration::from_secs(40);
    let (first_run, second_run) = loop {
        let now_sweeps = sweeps(&second);
        let ts = exported_timestamps(&vm, &series);
        let (a, b): (Vec<i64>, Vec<i64>) = ts.into_iter().partition(|&t| t < kill_ms);
        // The sweep counted last may still be on its way.
        if a.len() as u64 >= before_kill && b.len() as u64 + 1 >= now_sweeps {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "first run swept {before_kill} times, {} samples back; second {now_sweeps}, {} back; log:\n{}",
            a.len(),
            b.len(),
            second.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        (before_kill..=before_kill + 1).contains(&(first_run.len() as u64)),
        "first run swept {before_kill} times, {} samples arrived",
        first_run.len()
    );
    assert!(second_run.len() >= 10, "{}", second_run.len());
    // The samples cover the outage: the first run's up to the kill.
    let last_first = *first_run.last().unwrap();
    assert!(kill_ms - last_first < 2000, "{kill_ms} vs {last_first}");
}

fn fixture_snapshot() -> collector_core::Snapshot {
    tests::fixture_snapshot("cgroup-v2-kubepods")
}

/// One request as the fake receiver got it.
struct Got {
    at: Instant,
    headers: Vec<(String, String)>,
    request: WriteRequest,
}

/// A receiver answering each request with the next of `answers` (status, extra header
/// lines), then 204; it records what it got.
fn fake(answers: Vec<(u16, &'static str)>) -> (SocketAddr, Arc<Mutex<Vec<Got>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for conn in l.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let raw = snap::raw::Decoder::new()
                .decompress_vec(&body)
                .expect("a snappy body");
            let request = WriteRequest::decode(&raw[..]).expect("a WriteRequest");
            log.lock().unwrap().push(Got {
                at: Instant::now(),
                headers,
                request,
            });
            let (status, extra) = answers.next().unwrap_or((204, ""));
            let text = if status == 400 {
                "out of order sample"
            } else {
                ""
            };
            let mut w = conn;
            let _ = write!(
                w,
                "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (addr, got)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn runner() -> RunnerConfig {
    RunnerConfig {
        name: "rw".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(10),
        ..RunnerConfig::default()
    }
}

fn rw_sink(addr: SocketAddr) -> RemoteWriteSink {
    let mut cfg = RemoteWriteConfig::new(format!("http://{addr}/api/v1/write"));
    cfg.timeout = Duration::from_secs(2);
    RemoteWriteSink::new(cfg).unwrap()
}

fn samples_in(r: &WriteRequest) -> u64 {
    r.timeseries.iter().map(|t| t.samples.len() as u64).sum()
}

#[test]
fn a_400_drops_only_its_batch_and_is_counted() {
    let (addr, got) = fake(vec![(400, "")]);
    let first = Arc::new(fixture_snapshot());
    let mut second = fixture_snapshot();
    second.timestamp_ms = first.timestamp_ms + 1000;
    let second = Arc::new(second);
    let stats = rt().block_on(async {
        let h = SinkRunner::spawn(rw_sink(addr), runner()).unwrap();
        h.push(first.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.stats.failed.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "no refusal: {:?}", h.stats);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        h.push(second.clone());
        while h.stats.sent.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "nothing sent: {:?}", h.stats);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Time for a retry of the refused batch, if there were one.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = h.stats.clone();
        h.shutdown(Duration::from_secs(1)).await;
        s
    });
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 2, "the refused batch is not sent again");
    let (refused, taken) = (&got[0].request, &got[1].request);
    assert_eq!(stats.failed.load(Ordering::Relaxed), samples_in(refused));
    assert_eq!(stats.sent.load(Ordering::Relaxed), samples_in(taken));
    assert_eq!(stats.queued.load(Ordering::Relaxed), 0);
    assert!(taken
        .timeseries
        .iter()
        .flat_map(|t| &t.samples)
        .all(|s| s.timestamp == second.timestamp_ms as i64));
    // Remote-Write 1.0's headers.
    let h = &got[0].headers;
    let header = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(header("content-type"), Some("application/x-protobuf"));
    assert_eq!(header("content-encoding"), Some("snappy"));
    assert_eq!(header("x-prometheus-remote-write-version"), Some("0.1.0"));
    assert!(header("user-agent").is_some_and(|u| u.starts_with("collector-core/")));
}

#[test]
fn a_429_retry_after_is_waited_out() {
    let (addr, got) = fake(vec![(429, "Retry-After: 2\r\n")]);
    let snap = Arc::new(fixture_snapshot());
    let stats = rt().block_on(async {
        let h = SinkRunner::spawn(rw_sink(addr), runner()).unwrap();
        h.push(snap.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.stats.sent.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "nothing sent: {:?}", h.stats);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let s = h.stats.clone();
        h.shutdown(Duration::from_secs(1)).await;
        s
    });
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 2);
    let waited = got[1].at - got[0].at;
    // Without Retry-After the first back-off would be 50-100 ms.
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(got[0].request, got[1].request, "the same batch again");
    assert_eq!(
        stats.sent.load(Ordering::Relaxed),
        samples_in(&got[1].request)
    );
    assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 1);
}
