//! A Docker API that lies, made by the test on a unix socket: it answers malformed JSON, stalls
//! mid-answer, sends a body past any sane size, or lists and then drops every event stream at
//! once. Through all of it the exporter sweeps on its interval, a container the runtime lied
//! about has no name rather than a wrong one, memory stays bounded, the log says each kind of
//! failure once, and reconnection backs off.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tests::{Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// `{not json` for every answer, and garbage lines on the event stream.
    Malformed,
    /// Headers and half a body, then nothing.
    Stall,
    /// A list of 100 MB, streamed.
    Huge,
    /// A good (empty) list, then every event stream closed at once.
    Flapping,
}

/// The fake daemon: serves each connection on a thread of its own, counting list requests.
struct FakeDocker {
    path: PathBuf,
    lists: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl FakeDocker {
    fn start(lie: Lie) -> FakeDocker {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the fake socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let lists = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (lists, stop) = (lists.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let (lists, stop) = (lists.clone(), stop.clone());
                            std::thread::spawn(move || serve(s, lie, &lists, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
        }
        FakeDocker {
            path,
            lists,
            stop,
            _dir: dir,
        }
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(s: UnixStream, lie: Lie, lists: &AtomicUsize, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    while let Some(path) = next_request(&mut r) {
        if path.starts_with("/containers/json") {
            lists.fetch_add(1, Ordering::Relaxed);
        }
        let events = path.starts_with("/events");
        let ok = match lie {
            Lie::Malformed if events => {
                let _ = w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                // Garbage lines until the client goes.
                while !stop.load(Ordering::Relaxed) {
                    let chunk = b"{\"Type\":\"container\",\"Actor\":{\"ID\":12}}\n{garbage\n";
                    if w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .and_then(|()| w.write_all(chunk))
                        .and_then(|()| w.write_all(b"\r\n"))
                        .is_err()
                    {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                return;
            }
            Lie::Malformed => answer(&mut w, b"{not json"),
            Lie::Stall => {
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[{\"Id\":");
                // Holds the connection without another byte.
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    let mut b = [0u8; 1];
                    if matches!(r.get_mut().read(&mut b), Ok(0)) {
                        return;
                    }
                }
                return;
            }
            Lie::Huge => {
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                let piece = vec![b' '; 1 << 20];
                for _ in 0..100 {
                    if w.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .and_then(|()| w.write_all(&piece))
                        .and_then(|()| w.write_all(b"\r\n"))
                        .is_err()
                    {
                        return;
                    }
                }
                let _ = w.write_all(b"0\r\n\r\n");
                return;
            }
            Lie::Flapping if events => {
                let _ = w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
            Lie::Flapping => answer(&mut w, b"[]"),
        };
        if !ok {
            return;
        }
    }
}

/// The path of the next request on the connection, its headers read; `None` once it closes.
fn next_request(r: &mut BufReader<UnixStream>) -> Option<String> {
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    // The headers, to the blank line.
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            return Some(path);
        }
    }
}

fn answer(w: &mut UnixStream, body: &[u8]) -> bool {
    w.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .and_then(|()| w.write_all(body))
    .is_ok()
}

/// A cgroup the exporter takes for a Docker container (`/<top>/docker/<64 hex>`); the three
/// levels are removed leaf first.
struct DockerCgroup {
    leaf: TestCgroup,
    _docker: TestCgroup,
    _top: TestCgroup,
}

impl DockerCgroup {
    fn new() -> DockerCgroup {
        let hex: String = (0..64)
            .map(|i| char::from(b"0123456789abcdef"[(i * 7 + std::process::id() as usize) % 16]))
            .collect();
        let top = TestCgroup::new("ccol-lying");
        let docker = TestCgroup::under(&top, "docker");
        DockerCgroup {
            leaf: TestCgroup::under(&docker, &hex),
            _docker: docker,
            _top: top,
        }
    }
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the exporter against the fake for `secs`; returns the sweeps it made, its log, the
/// container's `name` label and its peak RSS.
fn against(lie: Lie, secs: u64) -> (f64, String, Option<String>, f64, usize) {
    tests::require_root();
    let fake = FakeDocker::start(lie);
    let cg = DockerCgroup::new();
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval=500ms",
            "--cgroups.include",
            &cg.leaf.id,
            "--runtime.docker-socket",
            fake.path.to_str().expect("utf-8"),
            "--runtime.containerd-socket=off",
            "--runtime.crio-socket=off",
        ],
    );
    let (body, sweeps) = tests::swept_on_500ms_interval(&exp, secs);
    let needle = format!("id=\"{}\"", cg.leaf.id);
    let line = body
        .lines()
        .find(|l| l.starts_with("container_memory_usage_bytes{") && l.contains(&needle))
        .unwrap_or_else(|| panic!("the container is served: {body}"))
        .to_string();
    let name = line
        .split("name=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(str::to_string)
        .filter(|n| !n.is_empty());
    let rss = peak_rss_mb(exp.child.id());
    let log = exp.log.lock().map(|l| l.clone()).unwrap_or_default();
    (sweeps, log, name, rss, fake.lists.load(Ordering::Relaxed))
}

/// Log lines about the Docker runtime.
fn runtime_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("runtime") && l.contains("docker"))
        .collect()
}

#[test]
fn malformed_answers_leave_the_container_unnamed_and_are_said_once() {
    let (_, log, name, rss, _) = against(Lie::Malformed, 6);
    assert_eq!(name, None, "a lying runtime names nothing");
    let lines = runtime_lines(&log);
    assert!(lines.len() <= 2, "said more than once: {lines:#?}");
    assert!(rss < 120.0, "peak RSS {rss} MB");
}

#[test]
fn a_stalled_answer_times_out_and_sweeps_go_on() {
    let (_, log, name, _, lists) = against(Lie::Stall, 8);
    assert_eq!(name, None);
    assert!(lists >= 1, "the exporter asked");
    assert!(runtime_lines(&log).len() <= 2, "{log}");
}

#[test]
fn a_huge_answer_is_cut_and_memory_stays_bounded() {
    let (_, log, name, rss, _) = against(Lie::Huge, 8);
    assert_eq!(name, None);
    // The body is refused past 64 MiB: never 100 MB held.
    assert!(rss < 160.0, "peak RSS {rss} MB");
    assert!(runtime_lines(&log).len() <= 2, "{log}");
}

#[test]
fn a_runtime_that_drops_every_event_stream_is_retried_with_back_off_and_said_once() {
    let (_, log, _, _, lists) = against(Lie::Flapping, 12);
    // With back-off from 500 ms doubling: about six attempts in 12 s, not twenty-four.
    assert!(lists <= 8, "{lists} lists in 12 s: no back-off");
    // Connected, lost, connected again; then quiet until it stays up.
    let lines = runtime_lines(&log);
    assert!(lines.len() <= 3, "said more than once: {lines:#?}");
}

/// A CRI-O that answers one container's inspect with garbage and another's well: the one it
/// lied about stays unnamed, the other is named, and the connection is kept (one `/info`, no
/// reconnection), so one bad answer does not cost every container its metadata. The
/// containers exist before the exporter connects: they are asked about once it has (before,
/// a container met while the runtime was not yet up was never asked about again).
#[test]
fn one_garbled_inspect_leaves_that_container_unnamed_and_the_others_named() {
    tests::require_root();
    // `/<top>/crio-<64 hex>.scope`, a CRI-O container's cgroup.
    let (good_hex, bad_hex) = ("a".repeat(64), "b".repeat(64));
    let top = TestCgroup::new("ccol-lying-crio");
    let good = TestCgroup::under(&top, &format!("crio-{good_hex}.scope"));
    let bad = TestCgroup::under(&top, &format!("crio-{bad_hex}.scope"));
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("crio.sock");
    let listener = UnixListener::bind(&path).expect("bind the fake socket");
    listener.set_nonblocking(true).expect("nonblocking");
    let infos = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (infos, stop, good_id, bad_id) = (
            infos.clone(),
            stop.clone(),
            good_hex.clone(),
            bad_hex.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let (infos, good_id, bad_id) = (infos.clone(), good_id.clone(), bad_id.clone());
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut r = BufReader::new(s.try_clone().expect("clone"));
                    let mut w = s;
                    while let Some(path) = next_request(&mut r) {
                        let body: Vec<u8> = if path == "/info" {
                            infos.fetch_add(1, Ordering::Relaxed);
                            br#"{"storage_driver":"overlay"}"#.to_vec()
                        } else if path == format!("/containers/{good_id}") {
                            br#"{"name":"k8s_web_pod","image":"nginx:1","labels":{"io.kubernetes.container.name":"web","io.kubernetes.pod.name":"pod","io.kubernetes.pod.namespace":"ns"}}"#.to_vec()
                        } else if path == format!("/containers/{bad_id}") {
                            b"{\"name\": [garbled".to_vec()
                        } else {
                            b"{}".to_vec()
                        };
                        if !answer(&mut w, &body) {
                            return;
                        }
                    }
                });
            }
        });
    }
    let include = top.id.clone();
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval=500ms",
            "--cgroups.include",
            &include,
            "--runtime.crio-socket",
            path.to_str().expect("utf-8"),
            "--runtime.docker-socket=off",
            "--runtime.containerd-socket=off",
            "--log.level=debug",
        ],
    );
    std::thread::sleep(Duration::from_secs(4));
    let body = exp.get("/metrics").text();
    let label = |id: &str, key: &str| {
        let needle = format!("id=\"{id}\"");
        body.lines()
            .find(|l| l.starts_with("container_memory_usage_bytes{") && l.contains(&needle))
            .unwrap_or_else(|| panic!("{id} is served: {body}"))
            .split(&format!("{key}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string()
    };
    let log = exp.log.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(
        label(&good.id, "image"),
        "nginx:1",
        "the good one is named; log: {log}"
    );
    assert_eq!(
        label(&good.id, "container_label_io_kubernetes_pod_name"),
        ""
    );
    assert_eq!(label(&bad.id, "image"), "", "the garbled one stays unnamed");
    assert_eq!(
        infos.load(Ordering::Relaxed),
        1,
        "the connection was kept: one /info"
    );
    stop.store(true, Ordering::Relaxed);
    drop((bad, good, top));
}
