//! The sink against servers that misbehave: one that refuses part of a batch (400), one that
//! fails (500), one that never answers. Failures are counted and logged, retries back off,
//! nothing crashes, and what can be delivered is.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collector_core::influx::{Api, InfluxConfig, InfluxSink};
use collector_core::sink::{RunnerConfig, SinkRunner};

const OOM_ID: &str = "0000000000000000000000000000000000000000000000000000000000000001";

#[derive(Clone, Copy)]
enum Mode {
    /// 400 for any batch holding a line about the OOM container, 204 otherwise.
    RefuseOom,
    Fail500,
    Silent,
}

/// A fake write endpoint that records every request's lines.
struct Fake {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Fake {
    fn start(mode: Mode) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let reqs = reqs.clone();
                std::thread::spawn(move || serve(conn, mode, reqs));
            }
        });
        Fake { addr, requests }
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn delivered_lines(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }
}

fn serve(conn: TcpStream, mode: Mode, reqs: Arc<Mutex<Vec<Vec<String>>>>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut len = 0usize;
    let mut gzip = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if l.starts_with("content-encoding:") && l.contains("gzip") {
            gzip = true;
        }
    }
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let text = if gzip {
        let mut s = String::new();
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut s);
        s
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let status = match mode {
        Mode::RefuseOom if text.contains(OOM_ID) => "400 Bad Request",
        Mode::RefuseOom => "204 No Content",
        Mode::Fail500 => "500 Internal Server Error",
        Mode::Silent => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
    };
    if status.starts_with("204") {
        reqs.lock().unwrap().push(lines);
    } else {
        reqs.lock().unwrap().push(Vec::new());
    }
    let body = if status.starts_with("400") {
        "{\"error\":\"partial write: field type conflict\"}"
    } else {
        ""
    };
    let mut w = conn;
    let _ = write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn fixture_snapshot() -> collector_core::Snapshot {
    tests::fixture_snapshot("cgroup-v2-kubepods")
}

fn sink(addr: SocketAddr, timeout: Duration) -> InfluxSink {
    let mut cfg = InfluxConfig::new(
        format!("http://{addr}"),
        Api::V1 {
            database: "x".into(),
            retention_policy: None,
            username: None,
            password: None,
        },
    );
    cfg.timeout = timeout;
    cfg.host = Some("h".into());
    InfluxSink::new(cfg).unwrap()
}

fn runner(timeout: Duration) -> RunnerConfig {
    RunnerConfig {
        timeout,
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..RunnerConfig::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_partly_refused_batch_delivers_the_rest_and_counts_the_refused() {
    let fake = Fake::start(Mode::RefuseOom);
    let snap = Arc::new(fixture_snapshot());
    let mut all = Vec::new();
    collector_core::influx::schema::encode(&snap, "h", false, true, &mut all);
    let bad = all
        .iter()
        .filter(|l| String::from_utf8_lossy(l).contains(OOM_ID))
        .count();
    assert!(bad >= 3, "the OOM container should give several points");
    rt().block_on(async {
        let h = SinkRunner::spawn(
            sink(fake.addr, Duration::from_secs(2)),
            runner(Duration::from_secs(2)),
        )
        .unwrap();
        h.push(snap.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.stats.sent.load(Ordering::Relaxed) + h.stats.failed.load(Ordering::Relaxed)
            < all.len() as u64
        {
            assert!(Instant::now() < deadline, "not settled: {:?}", h.stats);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(h.stats.failed.load(Ordering::Relaxed), bad as u64);
        assert_eq!(
            h.stats.sent.load(Ordering::Relaxed),
            (all.len() - bad) as u64
        );
        assert_eq!(h.stats.queued.load(Ordering::Relaxed), 0);
        h.shutdown(Duration::from_secs(1)).await;
    });
    let got = fake.delivered_lines();
    assert!(got.iter().all(|l| !l.contains(OOM_ID)));
    assert_eq!(got.len(), all.len() - bad);
    // Splitting is bounded: about 2 * log2(items) requests per refused point, not a storm.
    assert!(fake.count() < 20 * bad + 10, "{} requests", fake.count());
}

#[test]
fn a_failing_server_is_retried_with_back_off_and_keeps_the_data() {
    let fake = Fake::start(Mode::Fail500);
    let snap = Arc::new(fixture_snapshot());
    rt().block_on(async {
        let h = SinkRunner::spawn(
            sink(fake.addr, Duration::from_secs(2)),
            runner(Duration::from_secs(2)),
        )
        .unwrap();
        h.push(snap.clone());
        // Keep feeding it for 4 s, as a sweep loop would.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            h.push(snap.clone());
        }
        assert_eq!(h.stats.sent.load(Ordering::Relaxed), 0);
        assert_eq!(
            h.stats.failed.load(Ordering::Relaxed),
            0,
            "500 is not a refusal"
        );
        assert!(h.stats.queued.load(Ordering::Relaxed) > 0);
        assert!(h.stats.retries.load(Ordering::Relaxed) >= 2);
        h.shutdown(Duration::from_millis(100)).await;
    });
    // 200 ms doubling to 2 s over 4 s: a handful of attempts, not one per push or per ms.
    let n = fake.count();
    assert!((2..=12).contains(&n), "{n} requests in 4 s");
}

#[test]
fn a_server_that_never_answers_times_out_and_is_retried() {
    let fake = Fake::start(Mode::Silent);
    let snap = Arc::new(fixture_snapshot());
    rt().block_on(async {
        let timeout = Duration::from_millis(300);
        let h = SinkRunner::spawn(sink(fake.addr, timeout), runner(timeout)).unwrap();
        h.push(snap.clone());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(h.stats.sent.load(Ordering::Relaxed), 0);
        assert!(h.stats.retries.load(Ordering::Relaxed) >= 1);
        assert!(
            h.stats.queued.load(Ordering::Relaxed) > 0,
            "data kept for later"
        );
        // Shutting down does not hang on the silent server.
        let t = Instant::now();
        h.shutdown(Duration::from_secs(1)).await;
        assert!(t.elapsed() < Duration::from_secs(2));
    });
}
