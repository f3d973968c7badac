//! The Elasticsearch sink: dated indices against a real OpenSearch-API server (osmem-server,
//! `scripts/test.sh` installs it), data-stream mode against recorded Elasticsearch 8 answers
//! (`tests/fixtures/es8/`) replayed by a fake server, an outage with a server restart, and a
//! document refused for its mapping.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collector_core::elastic::{
    template, Auth, ElasticConfig, ElasticSink, IndexPattern, Secret, Target, DEFAULT_INDEX_PATTERN,
};
use collector_core::identity::{Identity, Kind, Runtime};
use collector_core::sink::{RunnerConfig, SinkHandle, SinkRunner};
use collector_core::{Collector, Config, Container, ContainerStats, Metadata, Snapshot};
use serde_json::{json, Value};
use tests::osmem::Osmem;
use tests::TestCgroup;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn collector(ids: &[&str]) -> Collector {
    Collector::new(Config {
        include: ids.iter().map(|s| s.to_string()).collect(),
        ..Config::default()
    })
    .unwrap()
}

fn runner_cfg() -> RunnerConfig {
    RunnerConfig {
        name: "es-test".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(3),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..RunnerConfig::default()
    }
}

fn dated(url: &str) -> ElasticConfig {
    let mut c = ElasticConfig::new(url);
    c.target = Target::Indices(DEFAULT_INDEX_PATTERN.into());
    c.host = Some("testhost".into());
    c.timeout = Duration::from_secs(3);
    // These tests count container documents; the machine's is checked in exporter_elastic.rs.
    c.machine_document = false;
    c
}

/// Waits until `sent + failed` reaches `n` and nothing is queued.
async fn settled(h: &SinkHandle, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let sent = h.stats.sent.load(Ordering::Relaxed);
        let failed = h.stats.failed.load(Ordering::Relaxed);
        if sent + failed >= n && h.stats.queued.load(Ordering::Relaxed) == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after {within:?}: sent {sent}, failed {failed}, want {n}: {:?}",
            h.stats
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Captures this thread's log lines (the current-thread runtime runs the sink here).
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Logs, impl Drop) {
        use tracing_subscriber::util::SubscriberInitExt;
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let guard = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_writer(move || LogWriter(b.clone()))
            .finish()
            .set_default();
        (Logs(buf), guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn term(field: &str, v: &str) -> Value {
    json!({ "term": { field: v } })
}

// ---------------------------------------------------------------------------------------
// Against osmem-server (the OpenSearch REST API): dated indices.
// ---------------------------------------------------------------------------------------

#[test]
fn dated_indices_hold_the_test_cgroups_figures() {
    let mut cg = TestCgroup::new("ccol-es");
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(256u64 << 20).to_string(),
    );
    let mut hold = std::process::Command::new(env!("CARGO_BIN_EXE_hold_memory"));
    hold.arg("8");
    cg.spawn(&mut hold);
    std::thread::sleep(Duration::from_millis(300));
    let os = Osmem::start();
    let mut col = collector(&[&cg.id]);
    let mut snaps = Vec::new();
    for _ in 0..3 {
        snaps.push(Arc::new(col.sweep()));
        std::thread::sleep(Duration::from_millis(250));
    }
    let t = Instant::now();
    rt().block_on(async {
        let h =
            SinkRunner::spawn(ElasticSink::new(dated(&os.url())).unwrap(), runner_cfg()).unwrap();
        for s in &snaps {
            h.push(s.clone());
        }
        settled(&h, 3, Duration::from_secs(10)).await;
        assert_eq!(h.stats.sent.load(Ordering::Relaxed), 3);
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 0);
        h.shutdown(Duration::from_secs(1)).await;
    });
    eprintln!("3 snapshots delivered in {:?}", t.elapsed());

    let figures: Vec<&Container> = snaps.iter().map(|s| s.get(&cg.id).unwrap()).collect();
    let q = term("container.id", &cg.id);
    assert_eq!(os.count("container-metrics-*", q.clone()), 3);
    assert_eq!(
        os.count("container-metrics-*", term("host.name", "testhost")),
        3
    );
    assert_eq!(
        os.count("container-metrics-*", term("event.kind", "metric")),
        3
    );
    // The interval figure needs a previous document: the first has none.
    let with_cpu = json!({ "bool": { "filter": [q.clone(), { "exists": { "field": "container.cpu.usage" } }] } });
    assert_eq!(os.count("container-metrics-*", with_cpu), 2);

    let r = os.json(
        "POST",
        "/container-metrics-*/_search",
        Some(&json!({
            "size": 10,
            "query": q,
            "sort": [{ "@timestamp": "asc" }],
            "aggs": {
                "mem": { "max": { "field": "collector.memory.usage_bytes" } },
                "cpu": { "max": { "field": "collector.cpu.usage_ns" } },
                "limit": { "max": { "field": "collector.spec.memory_limit_bytes" } },
            },
        })),
    );
    let max_mem = figures
        .iter()
        .filter_map(|c| c.stats.memory.usage_bytes)
        .max()
        .unwrap();
    let max_cpu = figures
        .iter()
        .filter_map(|c| c.stats.cpu.usage_ns)
        .max()
        .unwrap();
    assert!(max_mem >= 8 << 20, "hold_memory's 8 MiB: {max_mem}");
    assert_eq!(
        r["aggregations"]["mem"]["value"].as_f64(),
        Some(max_mem as f64),
        "{r}"
    );
    assert_eq!(
        r["aggregations"]["cpu"]["value"].as_f64(),
        Some(max_cpu as f64),
        "{r}"
    );
    assert_eq!(
        r["aggregations"]["limit"]["value"].as_f64(),
        Some((256u64 << 20) as f64)
    );
    // Each document as the snapshot said, in ECS terms.
    let hits = r["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    for (hit, c) in hits.iter().zip(&figures) {
        let d = &hit["_source"];
        assert_eq!(
            d["collector"]["memory"]["usage_bytes"].as_u64(),
            c.stats.memory.usage_bytes
        );
        assert_eq!(d["collector"]["cgroup"], cg.id.as_str());
        let frac = c.stats.memory.usage_bytes.unwrap() as f64 / (256u64 << 20) as f64;
        assert_eq!(d["container"]["memory"]["usage"].as_f64(), Some(frac));
    }
    let (a, b) = (&snaps[1], &snaps[2]);
    let cpu = (b.get(&cg.id).unwrap().stats.cpu.usage_ns.unwrap()
        - a.get(&cg.id).unwrap().stats.cpu.usage_ns.unwrap()) as f64
        / ((b.timestamp_ms - a.timestamp_ms) as f64 * 1e6);
    assert_eq!(
        hits[2]["_source"]["container"]["cpu"]["usage"].as_f64(),
        Some(cpu)
    );

    // The template is there, with its explicit mappings applied to the new index.
    let t = os.json("GET", "/_index_template/container-metrics", None);
    let t = &t["index_templates"][0]["index_template"];
    assert_eq!(t["_meta"]["managed_by"], template::MANAGED_BY);
    assert_eq!(t["index_patterns"], json!(["container-metrics-*.*.*"]));
    let index = IndexPattern::parse(DEFAULT_INDEX_PATTERN)
        .unwrap()
        .render(snaps[0].timestamp_ms);
    let m = os.json("GET", &format!("/{index}/_mapping"), None);
    let p = &m[&index]["mappings"]["properties"];
    assert_eq!(p["container"]["properties"]["id"]["type"], "keyword");
    assert_eq!(
        p["container"]["properties"]["memory"]["properties"]["usage"]["type"],
        "scaled_float"
    );
    assert_eq!(
        p["collector"]["properties"]["memory"]["properties"]["usage_bytes"]["type"],
        "long"
    );
    assert_eq!(p["@timestamp"]["type"], "date");
}

/// Pushes one snapshot through a fresh sink and waits for it.
fn push_once(cfg: ElasticConfig, snap: Arc<Snapshot>) {
    rt().block_on(async {
        let h = SinkRunner::spawn(ElasticSink::new(cfg).unwrap(), runner_cfg()).unwrap();
        let n = snap.containers.len() as u64;
        h.push(snap);
        settled(&h, n, Duration::from_secs(10)).await;
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 0);
        h.shutdown(Duration::from_secs(1)).await;
    });
}

#[test]
fn an_existing_template_is_left_alone_unless_overwrite_is_set() {
    let cg = TestCgroup::new("ccol-es-tpl");
    let os = Osmem::start();
    let mut col = collector(&[&cg.id]);
    // A first start installs it.
    push_once(dated(&os.url()), Arc::new(col.sweep()));
    let get = || {
        os.json("GET", "/_index_template/container-metrics", None)["index_templates"][0]
            ["index_template"]
            .clone()
    };
    assert_eq!(get()["_meta"]["managed_by"], template::MANAGED_BY);
    // An administrator replaces it with their own.
    os.json(
        "PUT",
        "/_index_template/container-metrics",
        Some(&json!({
            "index_patterns": ["container-metrics-*"],
            "priority": 7,
            "template": { "mappings": { "properties": { "@timestamp": { "type": "date" } } } },
            "_meta": { "managed_by": "admin" },
        })),
    );
    // A second start leaves theirs in place...
    push_once(dated(&os.url()), Arc::new(col.sweep()));
    assert_eq!(get()["_meta"]["managed_by"], "admin");
    assert_eq!(get()["priority"], 7);
    // ...unless told to overwrite.
    let mut cfg = dated(&os.url());
    cfg.template.overwrite = true;
    push_once(cfg, Arc::new(col.sweep()));
    assert_eq!(get()["_meta"]["managed_by"], template::MANAGED_BY);
    assert_eq!(get()["priority"], 200);
    assert_eq!(
        os.count("container-metrics-*", term("container.id", &cg.id)),
        3
    );
}

/// The sink as a process runs it: its own runtime and thread, fed by the sweep loop.
struct Process {
    rt: tokio::runtime::Runtime,
    h: SinkHandle,
}

impl Process {
    fn start(cfg: ElasticConfig) -> Process {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let h = {
            let _g = rt.enter();
            SinkRunner::spawn(ElasticSink::new(cfg).unwrap(), runner_cfg()).unwrap()
        };
        Process { rt, h }
    }
}

#[test]
fn an_outage_with_a_server_restart_loses_nothing() {
    let cg = TestCgroup::new("ccol-es-outage");
    let mut os = Osmem::start();
    let mut col = collector(&[&cg.id]);
    let p = Process::start(dated(&os.url()));
    let mut pushed = 0u64;
    let mut tick = |p: &Process| {
        p.h.push(Arc::new(col.sweep()));
        std::thread::sleep(Duration::from_millis(400));
    };
    for _ in 0..4 {
        tick(&p);
        pushed += 1;
    }
    p.rt.block_on(settled(&p.h, pushed, Duration::from_secs(10)));
    let q = term("container.id", &cg.id);
    // osmem keeps nothing across a restart: count what landed before the outage now.
    let before = os.count("container-metrics-*", q.clone());
    assert_eq!(before, pushed);
    let pid = os.pid().unwrap();
    os.stop();
    assert!(
        TcpStream::connect(os.addr).is_err(),
        "osmem-server (pid {pid}) still answers"
    );
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        tick(&p);
        pushed += 1;
    }
    assert!(
        p.h.stats.queued.load(Ordering::Relaxed) > 0,
        "the outage queued nothing"
    );
    os.resume();
    for _ in 0..3 {
        tick(&p);
        pushed += 1;
    }
    p.rt.block_on(settled(&p.h, pushed, Duration::from_secs(30)));
    let after = os.count("container-metrics-*", q);
    let s = &p.h.stats;
    eprintln!(
        "pushed {pushed}: {before} before the outage, {after} after the restart; retries {}",
        s.retries.load(Ordering::Relaxed)
    );
    assert_eq!(
        before + after,
        pushed,
        "pushed {pushed}, landed {before} + {after}"
    );
    assert_eq!(s.failed.load(Ordering::Relaxed), 0);
    assert_eq!(s.dropped.load(Ordering::Relaxed), 0);
    assert!(s.retries.load(Ordering::Relaxed) >= 1);
    // The restarted server came back empty; the sink put the template back before writing.
    let t = os.json("GET", "/_index_template/container-metrics", None);
    assert_eq!(
        t["index_templates"][0]["index_template"]["_meta"]["managed_by"],
        template::MANAGED_BY
    );
    p.rt.shutdown_background();
}

#[test]
fn a_document_refused_for_its_mapping_is_counted_and_named_and_the_rest_lands() {
    let bad = TestCgroup::new("ccol-es-bad");
    bad.set("pids", "pids.max", "100");
    let good = TestCgroup::new("ccol-es-good");
    let os = Osmem::start();
    let mut col = collector(&[&bad.id, &good.id]);
    let first = Arc::new(col.sweep());
    // Apart by more than the sink's interval, so both carry metrics.
    std::thread::sleep(Duration::from_millis(250));
    let snaps = [first, Arc::new(col.sweep())];
    assert_eq!(snaps[0].containers.len(), 2);
    assert_eq!(snaps[0].get(&bad.id).unwrap().stats.pids.limit, Some(100));
    assert_eq!(snaps[0].get(&good.id).unwrap().stats.pids.limit, None);
    // Someone made today's index with `collector.pids.limit` as a boolean: a number will not fit.
    let pattern = IndexPattern::parse(DEFAULT_INDEX_PATTERN).unwrap();
    let mut mappings = template::mappings();
    mappings["properties"]["collector"]["properties"]["pids"]["properties"]["limit"] =
        json!({ "type": "boolean" });
    let mut indices: Vec<String> = snaps
        .iter()
        .map(|s| pattern.render(s.timestamp_ms))
        .collect();
    indices.dedup();
    for index in &indices {
        os.json(
            "PUT",
            &format!("/{index}"),
            Some(&json!({ "mappings": mappings })),
        );
    }
    let (logs, _guard) = Logs::capture();
    rt().block_on(async {
        let h =
            SinkRunner::spawn(ElasticSink::new(dated(&os.url())).unwrap(), runner_cfg()).unwrap();
        for s in &snaps {
            h.push(s.clone());
        }
        settled(&h, 4, Duration::from_secs(10)).await;
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 2, "{:?}", h.stats);
        assert_eq!(h.stats.sent.load(Ordering::Relaxed), 2, "{:?}", h.stats);
        assert_eq!(
            h.stats.retries.load(Ordering::Relaxed),
            0,
            "a refusal is not retried"
        );
        h.shutdown(Duration::from_secs(1)).await;
    });
    assert_eq!(
        os.count("container-metrics-*", term("container.id", &good.id)),
        2
    );
    assert_eq!(
        os.count("container-metrics-*", term("container.id", &bad.id)),
        0
    );
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("mapper_parsing_exception"), "{line}");
    assert!(line.contains("collector.pids.limit"), "{line}");
    assert!(line.contains(&format!("container {}", bad.id)), "{line}");
    eprintln!("logged: {line}");
}

// ---------------------------------------------------------------------------------------
// Data-stream mode against recorded Elasticsearch 8 answers (tests/fixtures/es8/).
// ---------------------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/es8")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// (action, document) pairs of a `_bulk` body.
    fn items(&self) -> Vec<(Value, Value)> {
        assert!(self.body.ends_with('\n'), "NDJSON ends with a newline");
        let lines: Vec<&str> = self.body.lines().collect();
        assert_eq!(lines.len() % 2, 0, "{}", self.body);
        lines
            .chunks(2)
            .map(|c| {
                (
                    serde_json::from_str(c[0]).unwrap(),
                    serde_json::from_str(c[1]).unwrap(),
                )
            })
            .collect()
    }
}

/// What the fake answers to `_bulk` requests, in order; then `Default`.
#[derive(Clone)]
enum Answer {
    /// Status and body.
    Fixed(u16, String),
    /// Every item created (`errors: false`).
    AllCreated,
    /// 400 for the whole request when the body holds this text, else all created.
    Refuse400If(String),
}

/// A fake Elasticsearch: templates (`HEAD` -> `template_status`, `PUT` acknowledged) and
/// `_bulk` answered from a script. Records every request.
struct FakeEs {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeEs {
    fn start(template_status: u16, script: Vec<Answer>, then: Answer) -> FakeEs {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (reqs, script, then) = (reqs.clone(), script.clone(), then.clone());
                std::thread::spawn(move || serve(conn, template_status, &reqs, &script, &then));
            }
        });
        FakeEs { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn bulks(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/_bulk"))
            .collect()
    }
}

fn serve(
    conn: TcpStream,
    template_status: u16,
    reqs: &Mutex<Vec<Request>>,
    script: &Mutex<VecDeque<Answer>>,
    then: &Answer,
) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    // Keep-alive: several requests per connection.
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut raw = vec![0u8; len];
        if r.read_exact(&mut raw).is_err() {
            return;
        }
        let body = if get("content-encoding").is_some_and(|v| v.contains("gzip")) {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        };
        let req = Request {
            method: method.clone(),
            path: path.clone(),
            headers: headers.clone(),
            body,
        };
        reqs.lock().unwrap().push(req.clone());
        let (status, text) = if path.starts_with("/_index_template/") {
            match method.as_str() {
                "HEAD" => (template_status, String::new()),
                _ => (200, fixture("index-template-acknowledged.json")),
            }
        } else if path.starts_with("/_bulk") {
            let answer = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| then.clone());
            let n = req.body.lines().count() / 2;
            let all_created = || {
                let items: Vec<Value> = (0..n)
                    .map(|_| json!({ "create": { "status": 201, "result": "created" } }))
                    .collect();
                (
                    200,
                    json!({ "took": 1, "errors": false, "items": items }).to_string(),
                )
            };
            match answer {
                Answer::Fixed(s, b) => (s, b),
                Answer::AllCreated => all_created(),
                Answer::Refuse400If(m) if req.body.contains(&m) => (
                    400,
                    json!({ "error": { "type": "illegal_argument_exception", "reason": "Malformed action/metadata line" }, "status": 400 }).to_string(),
                ),
                Answer::Refuse400If(_) => all_created(),
            }
        } else {
            (404, String::new())
        };
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            413 => "Request Entity Too Large",
            _ => "Other",
        };
        let body = if method == "HEAD" { "" } else { text.as_str() };
        let mut w = &conn;
        let _ = write!(
            w,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nX-Elastic-Product: Elasticsearch\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
}

/// Four containers, one metric document each.
fn four_containers() -> Arc<Snapshot> {
    let mut s = Snapshot {
        timestamp_ms: 1_705_312_800_000,
        ..Default::default()
    };
    s.machine.memory_bytes = Some(8 << 30);
    s.machine.cpu_cores = Some(4);
    for i in 0..4 {
        let mut stats = ContainerStats::default();
        stats.cpu.usage_ns = Some(1_000_000 * (i + 1));
        stats.memory.usage_bytes = Some((i + 1) << 20);
        let cid = format!("{i:064x}");
        s.containers.push(Container {
            id: format!("/docker/{cid}"),
            identity: Identity {
                kind: Kind::Container,
                runtime: Some(Runtime::Docker),
                container_id: Some(cid),
                pod_uid: None,
                qos_class: None,
            },
            first_seen_ms: 0,
            created_ms: None,
            idle: false,
            meta: Metadata {
                name: Some(format!("app-{i}")),
                image: Some("busybox:1.36".into()),
                ..Metadata::default()
            },
            stats,
        });
    }
    Arc::new(s)
}

fn ds_config(url: &str) -> ElasticConfig {
    let mut c = ElasticConfig::new(url);
    c.auth = Auth::ApiKey(Secret("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw".into()));
    c.host = Some("node-1".into());
    c.timeout = Duration::from_secs(2);
    c.machine_document = false;
    c
}

#[test]
fn data_stream_mode_delivers_a_batch_es8_accepts() {
    let fake = FakeEs::start(
        404,
        vec![Answer::Fixed(200, fixture("bulk-success.json"))],
        Answer::AllCreated,
    );
    let snap = four_containers();
    rt().block_on(async {
        let h = SinkRunner::spawn(
            ElasticSink::new(ds_config(&fake.url())).unwrap(),
            runner_cfg(),
        )
        .unwrap();
        h.push(snap.clone());
        settled(&h, 4, Duration::from_secs(10)).await;
        assert_eq!(h.stats.sent.load(Ordering::Relaxed), 4);
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 0);
        h.shutdown(Duration::from_secs(1)).await;
    });
    let reqs = fake.requests();
    let seen: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.split('?').next().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("HEAD", "/_index_template/metrics-container-default"),
            ("PUT", "/_index_template/metrics-container-default"),
            ("POST", "/_bulk"),
        ]
    );
    // The template makes the name a data stream, with explicit mappings.
    let t: Value = serde_json::from_str(&reqs[1].body).unwrap();
    assert_eq!(t["data_stream"], json!({}));
    assert_eq!(t["index_patterns"], json!(["metrics-container-default"]));
    assert_eq!(
        t["template"]["mappings"]["properties"]["@timestamp"]["type"],
        "date"
    );
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
        );
    }
    let bulk = &reqs[2];
    assert_eq!(bulk.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(bulk.header("content-encoding"), Some("gzip"));
    let items = bulk.items();
    assert_eq!(items.len(), 4);
    for ((action, doc), c) in items.iter().zip(&snap.containers) {
        assert_eq!(action["create"]["_index"], "metrics-container-default");
        assert_eq!(action["create"]["_id"].as_str().map(str::len), Some(32));
        assert_eq!(doc["@timestamp"], "2024-01-15T10:00:00.000Z");
        assert_eq!(doc["event"]["kind"], "metric");
        assert_eq!(doc["host"]["name"], "node-1");
        assert_eq!(
            doc["container"]["id"].as_str(),
            c.identity.container_id.as_deref()
        );
        assert_eq!(doc["container"]["name"].as_str(), c.meta.name.as_deref());
        assert_eq!(doc["container"]["image"]["name"], "busybox:1.36");
        assert_eq!(doc["container"]["runtime"], "docker");
        assert_eq!(
            doc["collector"]["memory"]["usage_bytes"].as_u64(),
            c.stats.memory.usage_bytes
        );
    }
}

#[test]
fn data_stream_partial_failure_retries_only_the_429_item_and_counts_the_mapper_error() {
    let fake = FakeEs::start(
        404,
        vec![
            Answer::Fixed(200, fixture("bulk-partial-failure.json")),
            Answer::Fixed(200, fixture("bulk-retried-item-created.json")),
        ],
        Answer::Fixed(500, "{}".into()),
    );
    let snap = four_containers();
    let (logs, _guard) = Logs::capture();
    rt().block_on(async {
        let h = SinkRunner::spawn(
            ElasticSink::new(ds_config(&fake.url())).unwrap(),
            runner_cfg(),
        )
        .unwrap();
        h.push(snap.clone());
        settled(&h, 4, Duration::from_secs(10)).await;
        // 201, the 429 item once retried, and the 409 (already there) are delivered.
        assert_eq!(h.stats.sent.load(Ordering::Relaxed), 3, "{:?}", h.stats);
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 1, "{:?}", h.stats);
        assert_eq!(h.stats.retries.load(Ordering::Relaxed), 1, "{:?}", h.stats);
        // Nothing more is sent: the mapper error is not retried.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        h.shutdown(Duration::from_secs(1)).await;
    });
    let bulks = fake.bulks();
    assert_eq!(bulks.len(), 2, "{bulks:?}");
    let first = bulks[0].items();
    let second = bulks[1].items();
    assert_eq!(first.len(), 4);
    assert_eq!(second.len(), 1);
    // The retried item is item 1, byte for byte (same _id: a resend cannot duplicate it).
    assert_eq!(second[0], first[1]);
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(line.contains("document_parsing_exception"), "{line}");
    assert!(line.contains("collector.memory.usage_bytes"), "{line}");
    assert!(
        line.contains(&format!("container {}", snap.containers[2].id)),
        "{line}"
    );
}

#[test]
fn an_existing_template_is_not_replaced_and_whole_request_statuses_are_mapped() {
    // 401 twice (credentials not yet valid: keep the data), then a 413 that makes the runner
    // halve the batch, then all accepted.
    let fake = FakeEs::start(
        200,
        vec![
            Answer::Fixed(401, fixture("security-exception-401.json")),
            Answer::Fixed(401, fixture("security-exception-401.json")),
            Answer::Fixed(413, String::new()),
        ],
        Answer::AllCreated,
    );
    let snap = four_containers();
    rt().block_on(async {
        let h = SinkRunner::spawn(
            ElasticSink::new(ds_config(&fake.url())).unwrap(),
            runner_cfg(),
        )
        .unwrap();
        h.push(snap.clone());
        settled(&h, 4, Duration::from_secs(15)).await;
        assert_eq!(h.stats.sent.load(Ordering::Relaxed), 4, "{:?}", h.stats);
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 0);
        assert!(h.stats.retries.load(Ordering::Relaxed) >= 2);
        h.shutdown(Duration::from_secs(1)).await;
    });
    let reqs = fake.requests();
    assert!(
        reqs.iter().all(|r| r.method != "PUT"),
        "the template was there: no PUT"
    );
    let sizes: Vec<usize> = fake.bulks().iter().map(|r| r.items().len()).collect();
    assert_eq!(sizes, [4, 4, 4, 2, 2], "401, 401, 413 then two halves");

    // A 400 for the whole request refuses the batch: the runner isolates the bad item.
    let bad_id = &snap.containers[3].id;
    let fake = FakeEs::start(200, vec![], Answer::Refuse400If(bad_id.clone()));
    rt().block_on(async {
        let h = SinkRunner::spawn(
            ElasticSink::new(ds_config(&fake.url())).unwrap(),
            runner_cfg(),
        )
        .unwrap();
        h.push(snap.clone());
        settled(&h, 4, Duration::from_secs(10)).await;
        assert_eq!(h.stats.sent.load(Ordering::Relaxed), 3);
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), 1);
        h.shutdown(Duration::from_secs(1)).await;
    });
}
