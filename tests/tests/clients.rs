//! Clients that misbehave cannot take the exporter's descriptors or crowd others out: idle
//! connections past `--web.max-connections` make room for new ones, a connection is refused
//! only when every one is busy, and a client that takes none of its answer is cut after
//! `--web.write-timeout`. The long version, with figures, is `benches/soak/clients.py`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tests::{samples, try_http_request, Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn closed(exp: &Exporter, reason: &str) -> f64 {
    let body = exp.get("/metrics").text();
    samples(&body, "collector_http_connections_closed_total")
        .iter()
        .find(|(labels, _)| labels.contains(&format!("reason=\"{reason}\"")))
        .map_or(0.0, |(_, v)| *v)
}

/// A scrape that must answer within `secs`.
fn scrape_within(addr: SocketAddr, secs: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match try_http_request(addr, "GET", "/metrics", &[], b"") {
            Ok(r) if r.status == 200 => return r.body.len(),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no answer within {secs} s: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Whether the server has closed `s` (EOF or reset) within `secs`.
fn closed_by_server(s: &mut TcpStream, secs: u64) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(secs)))
        .expect("read timeout");
    let mut b = [0u8; 1];
    !matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        || e.kind() == std::io::ErrorKind::TimedOut)
}

#[test]
fn idle_connections_make_room_for_a_scraper_and_descriptors_stay_bounded() {
    let cg = TestCgroup::new("ccol-clients-idle");
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval=500ms",
            "--cgroups.include",
            &cg.id,
            "--web.max-connections=20",
        ],
    );
    scrape_within(exp.addr, 10);
    let base = open_fds(exp.child.id());
    // Connections that send nothing, as a slowloris holds them: three times the limit.
    let idle: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(exp.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = open_fds(exp.child.id());
    assert!(
        held <= base + 21,
        "{held} descriptors open with 60 idle clients, {base} before: the limit is 20"
    );
    // A well-behaved scraper still gets its answer at once.
    scrape_within(exp.addr, 2);
    assert!(
        closed(&exp, "evicted") >= 40.0,
        "idle connections closed to make room"
    );
    let open = samples(&exp.get("/metrics").text(), "collector_http_connections")
        .first()
        .map(|(_, v)| *v);
    assert!(open.is_some_and(|n| n <= 20.0), "open: {open:?}");
    drop(idle);
}

#[test]
fn a_client_that_takes_nothing_is_cut_and_busy_connections_are_not_evicted() {
    // A large body, so the kernel's socket buffers cannot take it all: 600 containers with
    // long names.
    let long = format!("ccol-clients-{}", "x".repeat(200));
    let cgs: Vec<TestCgroup> = (0..600).map(|_| TestCgroup::new(&long)).collect();
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval=1s",
            "--web.max-connections=2",
            "--web.write-timeout=2s",
            "--containers.processes=false",
        ],
    );
    let size = scrape_within(exp.addr, 20);
    // More than the 4 MiB a loopback socket's send buffer grows to.
    assert!(size > 5 << 20, "the body is only {size} bytes");

    // Two readers that ask and take nothing: both connections busy.
    let ask = |addr| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        s.connect(&SocketAddr::into(addr)).expect("connect");
        let mut s: TcpStream = s.into();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        s
    };
    let mut stuck = [ask(exp.addr), ask(exp.addr)];
    std::thread::sleep(Duration::from_millis(500));
    // A third is refused rather than either of them evicted.
    let mut third = TcpStream::connect(exp.addr).expect("connect");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok();
    assert!(
        closed_by_server(&mut third, 2),
        "the third connection was not closed"
    );
    // After the write timeout both readers are cut, and scrapes are answered again.
    std::thread::sleep(Duration::from_secs(3));
    for s in &mut stuck {
        // Draining what the kernel buffered reaches the server's close.
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut sink = vec![0u8; 1 << 20];
        let mut got = 0usize;
        loop {
            match s.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        assert!(got < size, "{got} of {size} bytes: the answer was not cut");
    }
    scrape_within(exp.addr, 5);
    assert!(closed(&exp, "refused") >= 1.0);
    assert!(closed(&exp, "stalled") >= 2.0);
    drop(cgs);
}

#[test]
fn bad_connection_settings_are_refused_with_the_flag_named() {
    for (flag, says) in [
        ("--web.max-connections=0", "web.max-connections"),
        ("--web.write-timeout=0s", "web.write-timeout"),
        ("--web.write-timeout=soon", "web.write-timeout"),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["--web.listen-address=127.0.0.1:0", flag])
            .output()
            .expect("the exporter");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {text}");
        assert!(text.contains(says), "{flag}: {text}");
    }
}

/// Scrapes of one sweep that ask for gzip share one body: twenty at once all get the same
/// whole text, with the test's container in it, and a later sweep is a new body.
#[test]
fn concurrent_gzip_scrapes_of_a_sweep_share_one_whole_body() {
    scrapes_of_a_sweep_share_one_whole_body("ccol-clients-shared-gz", true);
}

/// The same for plain text, shared while the body is small (all but the largest nodes).
#[test]
fn concurrent_plain_scrapes_of_a_sweep_share_one_whole_body() {
    scrapes_of_a_sweep_share_one_whole_body("ccol-clients-shared-plain", false);
}

fn scrapes_of_a_sweep_share_one_whole_body(name: &str, gzip: bool) {
    let cg = TestCgroup::new(name);
    let exp = Exporter::start(
        BIN,
        &["--housekeeping.interval=2s", "--cgroups.include", &cg.id],
    );
    scrape_within(exp.addr, 10);
    let scrape = |addr| {
        let headers: &[(&str, &str)] = if gzip {
            &[("Accept-Encoding", "gzip")]
        } else {
            &[]
        };
        let r = try_http_request(addr, "GET", "/metrics", headers, b"").expect("an answer");
        let mut text = String::new();
        if gzip {
            assert_eq!(r.header("content-encoding"), Some("gzip"));
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_string(&mut text)
                .expect("a whole gzip stream");
        } else {
            assert_eq!(r.header("content-encoding"), None);
            text = String::from_utf8(r.body).expect("UTF-8 text");
        }
        text
    };
    let sweeps = |text: &str| {
        samples(text, "collector_sweeps_total")
            .first()
            .map(|(_, v)| *v)
            .expect("collector_sweeps_total")
    };
    let bodies: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20).map(|_| s.spawn(|| scrape(exp.addr))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scrape"))
            .collect()
    });
    let needle = format!("id=\"{}\"", cg.id);
    for b in &bodies {
        assert!(b.contains(&needle), "the test's container");
        assert!(
            b.contains("collector_sweeps_total"),
            "the exporter's own series"
        );
    }
    // Within one sweep every body is the same; across two at most two differ.
    let distinct: std::collections::BTreeSet<&String> = bodies.iter().collect();
    assert!(distinct.len() <= 2, "{} different bodies", distinct.len());
    let first = sweeps(&bodies[0]);
    std::thread::sleep(Duration::from_millis(4500));
    assert!(
        sweeps(&scrape(exp.addr)) > first,
        "a later sweep, a new body"
    );
}
