//! A container runtime restarting under load: a fake Docker or containerd (`fake_runtime`)
//! is killed and started again (listener and connections dropped, socket file made anew)
//! every 1-2 s for 20 s, while 200 containers it lists exist as cgroups and a scraper reads
//! `/metrics` without pause. The exporter sweeps on its interval throughout, no scrape fails
//! and no container loses its name while the runtime is away, once the runtime stays up
//! every container is named from its last incarnation's list,
//! memory stays bounded, the log says the outage a bounded number of times, and threads and
//! descriptors come back to where they were.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::fake_runtime::containerd::NAMESPACES_LIST;
use tests::fake_runtime::{
    containerd_honest, docker_honest, Call, ContainerdContainer, DockerContainer, FakeServer,
    Handler, Protocol,
};
use tests::{samples, try_http_request, Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

const CONTAINERS: usize = 200;
const FLAPPING: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Runtime {
    Docker,
    Containerd,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
        }
    }
}

fn hex_id(n: usize) -> String {
    format!("{:064x}", 0xfeed_0000 + n)
}

/// The fake, listing every container with image `img:<incarnation>`, counting its lists.
fn fake(runtime: Runtime, incarnation: Arc<AtomicUsize>, lists: Arc<AtomicUsize>) -> FakeServer {
    let image = move || format!("img:{}", incarnation.load(Ordering::Relaxed));
    let counted = |honest: Handler| -> Handler {
        Arc::new(move |call: Call| {
            if call.path.starts_with("/containers/json") || call.path == NAMESPACES_LIST {
                lists.fetch_add(1, Ordering::Relaxed);
            }
            honest(call)
        })
    };
    match runtime {
        Runtime::Docker => FakeServer::start(
            "docker.sock",
            Protocol::Http1,
            counted(docker_honest(move || {
                (0..CONTAINERS)
                    .map(|i| DockerContainer {
                        id: hex_id(i),
                        name: format!("web-{i}"),
                        image: image(),
                    })
                    .collect()
            })),
        ),
        Runtime::Containerd => FakeServer::start(
            "containerd.sock",
            Protocol::Http2,
            counted(containerd_honest(move || {
                (0..CONTAINERS)
                    .map(|i| ContainerdContainer {
                        namespace: "k8s.io".into(),
                        id: hex_id(i),
                        image: image(),
                    })
                    .collect()
            })),
        ),
    }
}

/// The `image` label of each container served under `top`, by cgroup id.
fn images(body: &str, top: &str) -> Vec<(String, String)> {
    let label = |l: &str, k: &str| {
        l.split(&format!("{k}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string()
    };
    body.lines()
        .filter(|l| l.starts_with("container_memory_usage_bytes{"))
        .map(|l| (label(l, "id"), label(l, "image")))
        .filter(|(id, _)| id.starts_with(top) && id.len() > top.len())
        .collect()
}

fn status_field(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// What the scraper saw: scrapes answered, failed, those where a container had lost its
/// image, and each sweep count with when it was read.
#[derive(Default)]
struct Scrapes {
    ok: usize,
    failed: Vec<String>,
    unnamed: usize,
    sweeps: Vec<(Instant, f64)>,
}

fn restarting_under_load(runtime: Runtime) {
    tests::require_root();
    let started = Instant::now();
    let top = TestCgroup::new(&format!("ccol-restart-{}", runtime.name()));
    let docker = (runtime == Runtime::Docker).then(|| TestCgroup::under(&top, "docker"));
    let leaves: Vec<TestCgroup> = (0..CONTAINERS)
        .map(|i| match &docker {
            Some(d) => TestCgroup::under(d, &hex_id(i)),
            None => TestCgroup::under(&top, &format!("cri-containerd-{}.scope", hex_id(i))),
        })
        .collect();
    let incarnation = Arc::new(AtomicUsize::new(0));
    let lists = Arc::new(AtomicUsize::new(0));
    let mut fake = fake(runtime, incarnation.clone(), lists.clone());
    let socket_flag = format!("--runtime.{}-socket", runtime.name());
    let others: Vec<String> = ["docker", "containerd", "crio"]
        .iter()
        .filter(|r| **r != runtime.name())
        .map(|r| format!("--runtime.{r}-socket=off"))
        .collect();
    let mut args = vec![
        "--housekeeping.interval=500ms",
        "--cgroups.include",
        &top.id,
        &socket_flag,
        fake.path_str(),
    ];
    args.extend(others.iter().map(String::as_str));
    let exp = Exporter::start(BIN, &args);
    let pid = exp.child.id();

    // Every container named from the first incarnation: then the baseline.
    let named = |gen: usize, within: Duration| {
        let want = format!("img:{gen}");
        let deadline = Instant::now() + within;
        loop {
            let body = exp.get("/metrics").text();
            let seen = images(&body, &top.id);
            let good = seen.iter().filter(|(_, img)| *img == want).count();
            if good == CONTAINERS {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{good} of {CONTAINERS} named {want} ({} served); log: {}",
                seen.len(),
                exp.log.lock().map(|l| l.clone()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    named(0, Duration::from_secs(15));
    let (threads0, fds0) = (status_field(pid, "Threads:"), descriptors(pid));

    // A scraper without pause, from a thread of its own.
    let scrapes = Arc::new(Mutex::new(Scrapes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (scrapes, stop, addr, top) = (scrapes.clone(), stop.clone(), exp.addr, top.id.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = try_http_request(addr, "GET", "/metrics", &[], &[]);
                let mut s = scrapes.lock().expect("scrapes");
                match r {
                    Ok(r) if r.status == 200 => {
                        s.ok += 1;
                        let body = r.text();
                        let sweeps = samples(&body, "collector_sweeps_total")
                            .first()
                            .map_or(0.0, |(_, v)| *v);
                        s.sweeps.push((Instant::now(), sweeps));
                        // What the runtime told stays while it is away: names do not flicker.
                        let named = images(&body, &top)
                            .iter()
                            .filter(|(_, img)| !img.is_empty())
                            .count();
                        if named < CONTAINERS {
                            s.unnamed += 1;
                        }
                    }
                    Ok(r) => s.failed.push(format!("HTTP {}", r.status)),
                    Err(e) => s.failed.push(e.to_string()),
                }
            }
        })
    };

    // Killed and started again every 1-2 s (down 100-400 ms each time).
    let flapping = Instant::now();
    let lists_before = lists.load(Ordering::Relaxed);
    let mut restarts = 0;
    while flapping.elapsed() < FLAPPING {
        std::thread::sleep(Duration::from_millis(1000 + (restarts * 373) % 1000));
        fake.kill();
        std::thread::sleep(Duration::from_millis(100 + (restarts * 131) % 300));
        incarnation.fetch_add(1, Ordering::Relaxed);
        fake.restart();
        restarts += 1;
    }
    let last = incarnation.load(Ordering::Relaxed);
    let lists_flapping = lists.load(Ordering::Relaxed) - lists_before;
    let up_again = Instant::now();
    let renamed = named(last, Duration::from_secs(35));
    stop.store(true, Ordering::Relaxed);
    scraper.join().expect("the scraper");

    let s = scrapes.lock().expect("scrapes");
    let longest_without_a_sweep = s
        .sweeps
        .windows(2)
        .filter(|w| w[1].1 > w[0].1)
        .fold((s.sweeps[0].0, Duration::ZERO), |(since, max), w| {
            (w[1].0, max.max(w[1].0 - since))
        })
        .1;
    let log = exp.log.lock().map(|l| l.clone()).unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("runtime") && l.contains(runtime.name()))
        .collect();
    let rss = status_field(pid, "VmHWM:") / 1024.0;
    // The threads that wrote plain scrapes (tokio's blocking pool) go after 10 s idle.
    let quiet = Instant::now();
    let (threads, fds) = loop {
        let (threads, fds) = (status_field(pid, "Threads:"), descriptors(pid));
        if (threads <= threads0 && fds <= fds0) || quiet.elapsed() > Duration::from_secs(15) {
            break (threads, fds);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "{}: {restarts} restarts, {lists_flapping} lists meanwhile; named again {:.1} s after the last; {} scrapes, {} failed; \
         {} with a container unnamed; longest without a sweep {:.2} s; {} runtime log lines; peak RSS {rss:.1} MB; \
         threads {threads0} -> {threads}, descriptors {fds0} -> {fds} ({:.1} s after the \
         last scrape); {:.0} s in all",
        runtime.name(),
        (renamed - up_again).as_secs_f64(),
        s.ok,
        s.failed.len(),
        s.unnamed,
        longest_without_a_sweep.as_secs_f64(),
        lines.len(),
        quiet.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    eprintln!("{lines:#?}");
    assert!(restarts >= 10, "{restarts} restarts");
    // Reconnection backs off: not a list after each of the restarts.
    assert!(
        lists_flapping <= 8,
        "{lists_flapping} lists in {FLAPPING:?} of restarts"
    );
    assert!(s.failed.is_empty(), "failed scrapes: {:?}", s.failed);
    assert!(s.ok >= 50, "{} scrapes", s.ok);
    assert_eq!(s.unnamed, 0, "scrapes with a container unnamed");
    assert!(
        longest_without_a_sweep < Duration::from_secs(2),
        "{longest_without_a_sweep:?} without a sweep at 500 ms"
    );
    assert!(lines.len() <= 4, "said more than a few times: {lines:#?}");
    assert!(rss < 150.0, "peak RSS {rss:.1} MB");
    assert!(threads <= threads0, "threads {threads0} -> {threads}");
    assert!(fds <= fds0, "descriptors {fds0} -> {fds}");
    drop(exp);
    drop(leaves);
    drop(docker);
}

#[test]
fn a_docker_restarting_under_load() {
    restarting_under_load(Runtime::Docker);
}

#[test]
fn a_containerd_restarting_under_load() {
    restarting_under_load(Runtime::Containerd);
}
