//! What the web page's history costs at 1,000 containers: the live heap it holds once its
//! rings are full (a global allocator counts bytes allocated less bytes freed), the resident
//! set it adds (`/proc/self/statm`), and the CPU of recording one sweep. Synthetic snapshots:
//! no cgroup is read, no root needed.
//!
//! Run: `cargo bench -p benches --bench ui_history` (`CCOL_BENCH_CONTAINERS` for another count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use collector_core::{Container, Snapshot};
use collector_exporter::history::History;

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Relaxed);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Relaxed);
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - l.size() as i64, Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// 1,000 containers with ids as a kubelet names them, figures moving each sweep.
fn snapshot(n: usize) -> Snapshot {
    let containers = (0..n)
        .map(|i| {
            let id = format!(
                "/kubepods/burstable/pod{i:08x}-1f2e-4c3b-9a8d-7e6f5a4b3c2d/{:064x}",
                i * 7919
            );
            let mut c = Container {
                identity: collector_core::identity::classify(&id, &[]),
                id,
                first_seen_ms: 0,
                created_ms: None,
                idle: false,
                meta: Default::default(),
                stats: Default::default(),
            };
            c.stats.network.interfaces.push(Default::default());
            c.stats.blkio.push(Default::default());
            c
        })
        .collect();
    Snapshot {
        containers,
        ..Snapshot::default()
    }
}

fn advance(s: &mut Snapshot, interval: Duration) {
    s.timestamp_ms += interval.as_millis() as u64;
    for (i, c) in s.containers.iter_mut().enumerate() {
        let st = &mut c.stats;
        *st.cpu.usage_ns.get_or_insert(0) += 1_000_000 * (i as u64 % 50);
        st.memory.working_set_bytes = Some((i as u64 + 1) << 20);
        st.memory.cache_bytes = Some((i as u64) << 18);
        st.network.interfaces[0].rx_bytes += 1000;
        st.network.interfaces[0].tx_bytes += 500;
        st.blkio[0].read_bytes += 4096;
    }
}

fn main() {
    // Under `cargo test --benches`: nothing to measure.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = std::env::var("CCOL_BENCH_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let configs = [
        (Duration::from_secs(900), Duration::from_secs(5)),
        (Duration::from_secs(900), Duration::from_secs(1)),
        (Duration::from_secs(512), Duration::from_secs(1)),
        (Duration::from_secs(3600), Duration::from_secs(10)),
    ];
    // Each configuration in a process of its own, so that its RSS is not pages another
    // one freed.
    let Some(one) = std::env::var("CCOL_UI_HISTORY_ONE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        overview_size(n);
        println!("containers  window  interval  points  stride  heap MB  heap B/point  RSS MB  record us (median)");
        for i in 0..configs.len() {
            let exe = std::env::current_exe().expect("the bench's path");
            let st = std::process::Command::new(exe)
                .env("CCOL_UI_HISTORY_ONE", i.to_string())
                .status()
                .expect("run the bench again");
            assert!(st.success(), "configuration {i}: {st}");
        }
        return;
    };
    for (window, interval) in configs.get(one..=one).unwrap_or_default().iter().copied() {
        let mut snap = snapshot(n);
        let (heap0, rss0) = (LIVE.load(Relaxed), rss_bytes());
        let mut h = History::new(window, interval);
        let sweeps = h.capacity() as u64 * h.stride() + 5;
        let mut times = Vec::with_capacity(sweeps as usize);
        for _ in 0..sweeps {
            advance(&mut snap, interval);
            let t = Instant::now();
            h.record(&snap);
            times.push(t.elapsed());
        }
        let heap = LIVE.load(Relaxed) - heap0;
        let rss = rss_bytes() - rss0;
        times.sort();
        let median = times[times.len() / 2];
        assert_eq!(h.containers(), n);
        let points = h.capacity();
        println!(
            "{n:>10}  {:>6}  {:>8}  {points:>6}  {:>6}  {:>7.2}  {:>12.1}  {:>6.2}  {:>8.0}",
            humantime(window),
            humantime(interval),
            h.stride(),
            heap as f64 / 1e6,
            heap as f64 / (n * points.max(1)) as f64,
            rss as f64 / 1e6,
            median.as_secs_f64() * 1e6,
        );
        assert!(
            heap as usize <= h.heap_bytes() * 2 && h.heap_bytes() <= heap as usize * 2,
            "heap_bytes() {} far from the counted {heap}",
            h.heap_bytes()
        );
        drop(h);
    }
}

/// The size of `/api/v1/overview` (what the page polls each sweep) at `n` containers with
/// runtime names, images and pods, plain and gzipped as the server sends it.
fn overview_size(n: usize) {
    use std::io::Write;
    let mut snap = snapshot(n);
    for (i, c) in snap.containers.iter_mut().enumerate() {
        c.meta.name = Some(format!("k8s_app-{i}_shop-{i}-7d9f8b6c5-x2x4z_shop_0"));
        c.meta.image = Some(format!("registry.example.com/shop/app-{i}:1.24.3"));
        c.meta.namespace = Some("shop".into());
        c.meta.pod = Some(format!("shop-{i}-7d9f8b6c5-x2x4z"));
        c.stats.spec.memory_limit_bytes = Some(512 << 20);
    }
    let mut h = History::new(Duration::from_secs(900), Duration::from_secs(5));
    for _ in 0..2 {
        advance(&mut snap, Duration::from_secs(5));
        h.record(&snap);
    }
    let body = serde_json::to_vec(&collector_exporter::views::Overview::of(&snap, &h, 5000))
        .expect("JSON");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body).expect("gzip");
    let zipped = gz.finish().expect("gzip");
    println!(
        "/api/v1/overview at {n} containers: {:.0} KB, {:.0} KB gzipped",
        body.len() as f64 / 1e3,
        zipped.len() as f64 / 1e3
    );
}

fn humantime(d: Duration) -> String {
    match d.as_secs() {
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
