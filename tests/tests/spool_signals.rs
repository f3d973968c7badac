//! The exporter's spool and signals: SIGTERM during an outage exits within the sinks' grace
//! with the spool on disk, and SIGKILL at random moments (10 runs here, 100 by
//! `benches/soak/spool-kill.sh`) always leaves a spool that opens, whose items arrive later
//! whole. A receiver written here takes InfluxDB v1 writes, checks every line strictly and
//! records it.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tests::{samples, Exporter, TestCgroup, NO_RUNTIMES};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// 204 and the lines recorded.
    Up,
    /// Every other request answered 503, the rest taken.
    Flaky,
    /// Every request answered 503.
    Down,
    /// Connections accepted and never answered.
    Silent,
}

/// An InfluxDB v1 write endpoint that records every line it takes and every line that does
/// not parse.
struct Receiver {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    lines: Arc<Mutex<Vec<String>>>,
    bad: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let r = Receiver {
            addr,
            mode: Arc::new(Mutex::new(mode)),
            lines: Arc::default(),
            bad: Arc::default(),
            stop: Arc::default(),
        };
        let (mode, lines, bad, stop) = (
            r.mode.clone(),
            r.lines.clone(),
            r.bad.clone(),
            r.stop.clone(),
        );
        let n = Arc::new(AtomicU64::new(0));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (mode, lines, bad, n) =
                            (mode.clone(), lines.clone(), bad.clone(), n.clone());
                        let _ = c.set_nonblocking(false);
                        std::thread::spawn(move || serve(c, &mode, &lines, &bad, &n));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        r
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    conn: TcpStream,
    mode: &Mutex<Mode>,
    lines: &Mutex<Vec<String>>,
    bad: &Mutex<Vec<String>>,
    n: &AtomicU64,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut r = BufReader::new(conn.try_clone().unwrap());
    loop {
        let (mut len, mut gzip) = (0usize, false);
        let mut first = true;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() && !first {
                break;
            }
            first = false;
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
        let m = *mode.lock().unwrap();
        let take = match m {
            Mode::Silent => {
                std::thread::sleep(Duration::from_secs(60));
                return;
            }
            Mode::Up => true,
            Mode::Flaky => n.fetch_add(1, Ordering::Relaxed).is_multiple_of(2),
            Mode::Down => false,
        };
        if take {
            let mut text = String::new();
            let ok = if gzip {
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_string(&mut text)
                    .is_ok()
            } else {
                String::from_utf8(body).map(|t| text = t).is_ok()
            };
            if !ok {
                bad.lock()
                    .unwrap()
                    .push("a body that does not decode".into());
            }
            for line in text.lines() {
                if let Err(e) = check_line(line) {
                    bad.lock().unwrap().push(format!("{e}: {line}"));
                } else {
                    lines.lock().unwrap().push(line.to_string());
                }
            }
        }
        let status = if take {
            "204 No Content"
        } else {
            "503 Service Unavailable"
        };
        let mut w = &conn;
        if write!(w, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

/// Splits `s` at unescaped, unquoted `sep`s (line protocol's escaping).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let (mut out, mut start, mut esc, mut quoted) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' => esc = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A strict reading of one line: measurement and tags, fields with typed values, timestamp.
fn check_line(line: &str) -> Result<(), String> {
    let parts = split_unescaped(line, ' ');
    let [series, fields, ts] = parts[..] else {
        return Err(format!("{} space-separated parts", parts.len()));
    };
    ts.parse::<i64>().map_err(|e| format!("timestamp: {e}"))?;
    let mut tags = split_unescaped(series, ',').into_iter();
    if tags.next().is_none_or(str::is_empty) {
        return Err("no measurement".into());
    }
    for t in tags {
        match split_unescaped(t, '=')[..] {
            [k, v] if !k.is_empty() && !v.is_empty() => {}
            _ => return Err(format!("tag {t:?}")),
        }
    }
    for f in split_unescaped(fields, ',') {
        let [k, v] = split_unescaped(f, '=')[..] else {
            return Err(format!("field {f:?}"));
        };
        let typed = if let Some(i) = v.strip_suffix('i') {
            i.parse::<i64>().is_ok()
        } else if let Some(u) = v.strip_suffix('u') {
            u.parse::<u64>().is_ok()
        } else if v.starts_with('"') {
            v.len() >= 2 && v.ends_with('"')
        } else {
            matches!(v, "t" | "f" | "true" | "false") || v.parse::<f64>().is_ok()
        };
        if k.is_empty() || !typed {
            return Err(format!("field {f:?}"));
        }
    }
    Ok(())
}

fn config(dir: &Path, sinks: &[(&str, String, &Path)], interval: &str) -> std::path::PathBuf {
    let mut text = format!("housekeeping.interval = \"{interval}\"\n");
    for (name, url, spool) in sinks {
        text.push_str(&format!(
            "\n[[sinks]]\ntype = \"influxdb\"\nname = \"{name}\"\nurl = \"{url}\"\ndatabase = \"x\"\n\
             interval = \"{interval}\"\ntimeout = \"10s\"\nhost = \"h\"\nspool_dir = \"{}\"\n",
            spool.display()
        ));
    }
    let p = dir.join("exporter.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn start(cfg: &Path, cg: &TestCgroup) -> Exporter {
    let mut args = vec![
        "--config.file",
        cfg.to_str().unwrap(),
        "--cgroups.include",
        &cg.id,
    ];
    args.extend(NO_RUNTIMES);
    Exporter::start(BIN, &args)
}

/// A series of the exporter's own for one sink.
fn sink_figure(e: &Exporter, name: &str, sink: &str) -> u64 {
    let body = e.get("/metrics").text();
    samples(&body, name)
        .iter()
        .find(|(l, _)| l.contains(&format!("sink=\"{sink}\"")))
        .map_or(0, |(_, v)| *v as u64)
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The timestamps of the test cgroup's `container_cpu` lines, each with how often it came.
fn sweeps_received(lines: &[String], id: &str) -> BTreeMap<u128, usize> {
    let mut out = BTreeMap::new();
    let tag = format!(
        ",id={}",
        id.replace(' ', "\\ ")
            .replace(',', "\\,")
            .replace('=', "\\=")
    );
    for l in lines
        .iter()
        .filter(|l| l.starts_with("container_cpu,") && l.contains(&tag))
    {
        if let Some(ts) = l.rsplit(' ').next().and_then(|t| t.parse().ok()) {
            *out.entry(ts).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn sigterm_during_an_outage_exits_within_the_grace_and_keeps_the_spool() {
    let cg = TestCgroup::new("ccol-sigterm");
    let dir = tempfile::tempdir().unwrap();
    let (spool_a, spool_b) = (dir.path().join("a"), dir.path().join("b"));
    // Three sinks down two ways: two never answer, one refuses connections.
    let silent = Receiver::start(Mode::Silent);
    let closed = format!("http://127.0.0.1:{}", tests::servers::free_port());
    let cfg = config(
        dir.path(),
        &[
            ("a", silent.url(), &spool_a),
            ("b", closed, &spool_b),
            ("c", silent.url(), &dir.path().join("c")),
        ],
        "500ms",
    );
    let mut exp = start(&cfg, &cg);
    std::thread::sleep(Duration::from_secs(3));
    let queued_b = sink_figure(&exp, "collector_sink_queue_items", "b");
    assert!(queued_b > 0, "nothing queued for b");
    let sweeps = samples(&exp.get("/metrics").text(), "collector_sweeps_total")[0].1 as u64;
    // Let what was counted reach the spool, then stop.
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let term_ns = now_ns();
    let pid = nix::unistd::Pid::from_raw(exp.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = loop {
        if let Some(st) = exp.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no exit 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = t.elapsed();
    println!("SIGTERM with three sinks down: exited in {took:?} ({status})");
    assert!(status.success(), "{status}: {}", exp.log.lock().unwrap());
    // The sinks' grace (5 s, all sinks at once) and a sweep at most.
    assert!(took < Duration::from_secs(6), "exit took {took:?}");
    drop(exp);
    // The spool was on disk: a restart with the receiver up delivers it.
    let up = Receiver::start(Mode::Up);
    let cfg = config(dir.path(), &[("b", up.url(), &spool_b)], "500ms");
    let exp = start(&cfg, &cg);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = sweeps_received(&up.lines.lock().unwrap(), &cg.id)
            .range(..term_ns)
            .count() as u64;
        if before >= sweeps {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{before} sweeps of the first run arrived of {sweeps}; log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        up.bad.lock().unwrap().is_empty(),
        "{:?}",
        up.bad.lock().unwrap()
    );
}

/// Runs of the SIGKILL campaign: `SOAK_RUNS` (100 in the soak script), 10 by default.
fn runs() -> u32 {
    std::env::var("SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

#[test]
fn sigkill_at_random_moments_leaves_a_spool_that_delivers_everything_whole() {
    let cg = TestCgroup::new("ccol-sigkill");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let rx = Receiver::start(Mode::Flaky);
    let cfg = config(dir.path(), &[("k", rx.url(), &spool)], "100ms");
    // A cheap random source: the clock's nanoseconds.
    let rand_ms = |lo: u64, hi: u64| lo + (now_ns() as u64 % (hi - lo));
    let mut counted: Vec<(u128, u128, u64)> = Vec::new();
    let (mut dropped, mut killed_with_queue) = (0, 0);
    for _ in 0..runs() {
        let mut exp = start(&cfg, &cg);
        let started = now_ns();
        std::thread::sleep(Duration::from_millis(rand_ms(100, 1500)));
        // What this run counted as swept, a moment before the kill; the last sweep or two
        // may still be on its way to the spool.
        let body = exp.get("/metrics").text();
        let sweeps = samples(&body, "collector_sweeps_total")
            .first()
            .map_or(0, |s| s.1 as u64);
        dropped += sink_figure(&exp, "collector_sink_dropped_total", "k");
        if sink_figure(&exp, "collector_sink_queue_items", "k") > 0 {
            killed_with_queue += 1;
        }
        std::thread::sleep(Duration::from_millis(rand_ms(0, 300)));
        exp.child.kill().unwrap();
        exp.child.wait().unwrap();
        counted.push((started, now_ns(), sweeps));
    }
    // Last run: the receiver takes everything; the spool drains.
    rx.set(Mode::Up);
    let mut exp = start(&cfg, &cg);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink_figure(&exp, "collector_sink_queue_items", "k") > 0
        || sink_figure(&exp, "collector_sink_sent_total", "k") == 0
    {
        assert!(
            Instant::now() < deadline,
            "the spool did not drain; log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    dropped += sink_figure(&exp, "collector_sink_dropped_total", "k");
    exp.stop();
    let lines = rx.lines.lock().unwrap().clone();
    let bad = rx.bad.lock().unwrap().clone();
    let received = sweeps_received(&lines, &cg.id);
    let unique: HashSet<&String> = lines.iter().collect();
    let mut missing = 0;
    for (i, (from, to, sweeps)) in counted.iter().enumerate() {
        let got = received.range(from..to).count() as u64;
        // Sweeps counted but not delivered, beyond the one still being encoded at the kill.
        missing += sweeps.saturating_sub(got + 1);
        assert!(
            got + 1 >= *sweeps,
            "run {i}: {sweeps} sweeps counted before the kill, {got} delivered"
        );
    }
    println!(
        "SIGKILL x{}: {} lines received ({} duplicates), {} corrupt, {} dropped (counted), {} sweeps missing, {} runs killed with items queued",
        counted.len(),
        lines.len(),
        lines.len() - unique.len(),
        bad.len(),
        dropped,
        missing,
        killed_with_queue
    );
    assert!(
        bad.is_empty(),
        "corrupt lines arrived: {:?}",
        &bad[..bad.len().min(5)]
    );
    assert_eq!(dropped, 0, "a 1 GiB spool had to drop items");
    assert!(
        killed_with_queue > 0,
        "no run was killed with items in the spool"
    );
}

#[test]
fn a_read_only_spool_at_start_stops_the_exporter_naming_it() {
    let mut fs = tests::Tmpfs::mount("1m");
    let spool = fs.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    fs.make_read_only(&spool);
    let cfg = config(
        fs.path(),
        &[("ro", "http://127.0.0.1:1".into(), &spool)],
        "1s",
    );
    let out = std::process::Command::new(BIN)
        .args(["--web.listen-address", "127.0.0.1:0", "--config.file"])
        .arg(&cfg)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("sink ro: opening its spool {}", spool.display())),
        "{said}"
    );
}

#[test]
fn a_spool_removed_under_the_exporter_costs_one_log_line_and_its_items() {
    let cg = TestCgroup::new("ccol-rmspool");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let rx = Receiver::start(Mode::Down);
    let cfg = config(dir.path(), &[("rm", rx.url(), &spool)], "200ms");
    let exp = start(&cfg, &cg);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sink_figure(&exp, "collector_sink_queue_items", "rm") > 0);
    std::fs::remove_dir_all(&spool).unwrap();
    let sweeps = |e: &Exporter| samples(&e.get("/metrics").text(), "collector_sweeps_total")[0].1;
    let before = sweeps(&exp);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(sweeps(&exp) > before, "sweeps stopped");
    let said = |what: &str| exp.log.lock().unwrap().matches(what).count();
    assert_eq!(
        said("the spool stopped working"),
        1,
        "{}",
        exp.log.lock().unwrap()
    );
    assert!(
        sink_figure(&exp, "collector_sink_dropped_total", "rm") > 0,
        "the removed items count"
    );
    assert_eq!(sink_figure(&exp, "collector_sink_spool_in_memory", "rm"), 1);
    // Delivery goes on from memory once the receiver is back.
    rx.set(Mode::Up);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink_figure(&exp, "collector_sink_sent_total", "rm") == 0
        || sink_figure(&exp, "collector_sink_queue_items", "rm") > 0
    {
        assert!(
            Instant::now() < deadline,
            "no delivery; log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And the spool is made again at the next try.
    let deadline = Instant::now() + Duration::from_secs(20);
    while said("the spool works again") == 0 {
        assert!(
            Instant::now() < deadline,
            "the spool was not made again; log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(spool.is_dir());
    assert_eq!(said("the spool stopped working"), 1);
    // The gauge follows at the next push.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink_figure(&exp, "collector_sink_spool_in_memory", "rm"), 0);
    assert!(rx.bad.lock().unwrap().is_empty());
}
