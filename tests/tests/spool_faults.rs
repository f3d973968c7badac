//! The on-disk spool when its disk misbehaves: a tiny tmpfs that fills, a directory made
//! read-only under it, a directory removed while it runs. Each time the sink keeps going,
//! the oldest items are dropped and counted, and every item delivered is whole (each carries
//! its own checksum) and in order: nothing corrupt is served, nothing is lost uncounted.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collector_core::sink::{Outcome, RunnerConfig, Sink, SinkHandle, SinkRunner, SinkStats};
use collector_core::Snapshot;
use tests::Tmpfs;

/// Item `n` of `size` bytes, ending with a checksum of the rest.
fn item(n: u64, size: usize) -> Vec<u8> {
    let mut v = format!("{n:012}:").into_bytes();
    v.resize(size - 9, b'a' + (n % 26) as u8);
    let sum = crc(&v);
    v.extend_from_slice(format!(":{sum:08x}").as_bytes());
    v
}

fn crc(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

/// The item's number, or why it is not a whole item.
fn check(v: &[u8]) -> Result<u64, String> {
    let text = std::str::from_utf8(v).map_err(|e| format!("not text: {e}"))?;
    let (body, sum) = text.rsplit_once(':').ok_or("no checksum")?;
    if format!("{:08x}", crc(body.as_bytes())) != sum {
        return Err(format!("checksum mismatch: {text:.40}"));
    }
    body.split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| "no number".to_string())
}

/// Makes `per_snapshot` numbered items per snapshot; delivers them while `up`.
struct Numbered {
    next: Arc<AtomicU64>,
    per_snapshot: u64,
    size: usize,
    up: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<u64>>>,
}

impl Sink for Numbered {
    fn kind(&self) -> &'static str {
        "numbered"
    }

    fn encode(&mut self, _: &Snapshot, _: bool, out: &mut Vec<Vec<u8>>) {
        for _ in 0..self.per_snapshot {
            out.push(item(self.next.fetch_add(1, Ordering::Relaxed), self.size));
        }
    }

    async fn send(&mut self, batch: &[Vec<u8>]) -> Outcome {
        if !self.up.load(Ordering::Relaxed) {
            return Outcome::Retry {
                after: None,
                reason: "down".into(),
            };
        }
        let mut got = self.got.lock().unwrap();
        for v in batch {
            got.push(check(v).unwrap_or_else(|e| panic!("a corrupt item was delivered: {e}")));
        }
        Outcome::Delivered
    }
}

/// A sink over a spool, on a current-thread runtime (so its logs are this thread's).
struct Rig {
    rt: tokio::runtime::Runtime,
    handle: Option<SinkHandle>,
    /// Items made so far, numbered from `first`.
    next: Arc<AtomicU64>,
    first: u64,
    up: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<u64>>>,
    snap: Arc<Snapshot>,
    per_snapshot: u64,
    /// Items the spool held when the sink started.
    restored: u64,
}

impl Rig {
    fn start(spool: &Path, per_snapshot: u64, size: usize, first: u64) -> Rig {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let next = Arc::new(AtomicU64::new(first));
        let (up, got) = (
            Arc::<AtomicBool>::default(),
            Arc::<Mutex<Vec<u64>>>::default(),
        );
        let sink = Numbered {
            next: next.clone(),
            per_snapshot,
            size,
            up: up.clone(),
            got: got.clone(),
        };
        let cfg = RunnerConfig {
            interval: Duration::from_millis(1),
            spool_dir: Some(spool.to_path_buf()),
            queue_bytes: 4 << 20,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(50),
            ..RunnerConfig::default()
        };
        let _guard = rt.enter();
        let handle = SinkRunner::spawn(sink, cfg).expect("the spool opens");
        drop(_guard);
        // Let the task start and publish what the spool holds.
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
        let restored = handle.stats.get(&handle.stats.queued);
        Rig {
            restored,
            rt,
            handle: Some(handle),
            next,
            first,
            up,
            got,
            snap: Arc::new(tests::fixture_snapshot("cgroup-v2-kubepods")),
            per_snapshot,
        }
    }

    fn stats(&self) -> &SinkStats {
        &self.handle.as_ref().expect("running").stats
    }

    fn stat(&self, f: impl Fn(&SinkStats) -> &AtomicU64) -> u64 {
        let s = self.stats();
        s.get(f(s))
    }

    fn made(&self) -> u64 {
        self.next.load(Ordering::Relaxed) - self.first
    }

    fn sleep(&self, d: Duration) {
        self.rt.block_on(async { tokio::time::sleep(d).await });
    }

    /// Feeds `n` snapshots and waits until every item made is queued, sent or dropped.
    fn feed(&self, n: u64) {
        let want = self.made() + n * self.per_snapshot;
        for _ in 0..n {
            self.handle
                .as_ref()
                .expect("running")
                .push(self.snap.clone());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.sleep(Duration::from_millis(20));
            let seen =
                self.stat(|s| &s.queued) + self.stat(|s| &s.sent) + self.stat(|s| &s.dropped);
            if self.made() == want && seen == want + self.restored {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "items unaccounted for: made {}, {:?}",
                self.made(),
                self.stats()
            );
        }
    }

    /// Brings the receiver up and waits for the queue to drain (one more snapshot fed).
    fn drain(&self) {
        self.up.store(true, Ordering::Relaxed);
        self.feed(1);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.stat(|s| &s.queued) > 0 {
            assert!(
                Instant::now() < deadline,
                "the queue did not drain: {:?}",
                self.stats()
            );
            self.sleep(Duration::from_millis(20));
        }
    }

    /// What was delivered came in order, once each, and with what was dropped makes up every
    /// item made. Returns how many were delivered.
    fn assert_accounted(&self) -> u64 {
        let got = self.got.lock().unwrap();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "items out of order or twice"
        );
        assert_eq!(
            got.len() as u64 + self.stat(|s| &s.dropped),
            self.made(),
            "delivered plus dropped is not every item made: {:?}",
            self.stats()
        );
        assert_eq!(
            got.last().copied(),
            Some(self.next.load(Ordering::Relaxed) - 1)
        );
        got.len() as u64
    }

    fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown(Duration::from_secs(2)));
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop();
    }
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .count()
    })
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

    fn count(&self, what: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(what)
            .count()
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

#[test]
fn a_full_tmpfs_drops_the_oldest_and_never_serves_a_torn_item() {
    let fs = Tmpfs::mount("1m");
    let spool = fs.path().join("spool");
    // A bound of 1 GiB on a 1 MiB filesystem: the filesystem fills first, over and over.
    // Writes of 37 items of 1000 bytes end part way into a page, so ENOSPC tears them.
    let mut rig = Rig::start(&spool, 37, 1000, 0);
    rig.feed(300);
    let (made, dropped, queued) = (
        rig.made(),
        rig.stat(|s| &s.dropped),
        rig.stat(|s| &s.queued),
    );
    let bytes = rig.stat(|s| &s.spool_bytes);
    assert!(dropped > 5_000, "only {dropped} of {made} dropped");
    // Only the oldest eighth goes when the disk fills, not the whole spool.
    assert!(queued > 800, "only {queued} items kept on a 1 MiB disk");
    assert!(
        bytes <= 1 << 20,
        "the spool says it holds {bytes} bytes on a 1 MiB disk"
    );
    assert_eq!(
        queued + dropped,
        made,
        "queued plus dropped is every item made"
    );
    rig.stop();
    // A restart reads the full spool back, in order, and nothing torn is taken for an item.
    let again = Rig::start(&spool, 37, 1000, made);
    assert_eq!(again.restored, queued, "the spool kept what it counted");
    again.drain();
    let got = again.got.lock().unwrap().clone();
    assert_eq!(got.len() as u64, queued + 37);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order or twice");
    assert_eq!(got[0], made - queued, "the newest items were kept");
    println!("full 1 MiB tmpfs: made {made}, dropped {dropped}, kept {queued} ({bytes} bytes), all delivered after a restart");
}

#[test]
fn a_read_only_spool_falls_back_to_memory_and_comes_back() {
    let (logs, _guard) = Logs::capture();
    let mut fs = Tmpfs::mount("16m");
    let spool = fs.path().join("spool");
    let rig = Rig::start(&spool, 10, 200, 0);
    rig.feed(20);
    fs.make_read_only(&spool);
    rig.feed(20);
    // The first delivery cannot move the spool's cursor: what it holds moves to memory.
    rig.drain();
    rig.feed(20);
    assert!(rig.stat(|s| &s.sent) >= 400);
    assert_eq!(rig.stat(|s| &s.spool_bytes), 0, "the spool is not in use");
    assert_eq!(rig.stat(|s| &s.spool_in_memory), 1);
    assert_eq!(logs.count("the spool stopped working"), 1, "one clear line");
    // Writable again: the next push after the retry interval spools again.
    fs.make_writable();
    rig.up.store(false, Ordering::Relaxed);
    rig.sleep(Duration::from_secs(10));
    rig.feed(5);
    assert!(segments(&spool) > 0, "spooling did not resume");
    assert!(rig.stat(|s| &s.spool_bytes) > 0);
    assert_eq!(rig.stat(|s| &s.spool_in_memory), 0);
    assert_eq!(logs.count("the spool works again"), 1);
    rig.drain();
    let sent = rig.assert_accounted();
    assert_eq!(rig.stat(|s| &s.dropped), 0, "nothing needed dropping");
    println!("read-only spool: {sent} items delivered, 0 dropped");
}

#[test]
fn a_removed_spool_directory_counts_its_items_lost_and_is_made_again() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let rig = Rig::start(&spool, 10, 200, 0);
    rig.feed(20);
    std::fs::remove_dir_all(&spool).unwrap();
    rig.feed(3);
    assert_eq!(
        rig.stat(|s| &s.dropped),
        200,
        "the removed items count as dropped"
    );
    assert_eq!(logs.count("the spool stopped working"), 1, "one clear line");
    assert_eq!(rig.stat(|s| &s.spool_in_memory), 1);
    rig.drain();
    assert_eq!(rig.stat(|s| &s.sent), 40, "what came after is delivered");
    rig.up.store(false, Ordering::Relaxed);
    rig.sleep(Duration::from_secs(10));
    rig.feed(5);
    assert!(segments(&spool) > 0, "the spool was not made again");
    assert_eq!(rig.stat(|s| &s.spool_in_memory), 0);
    rig.drain();
    let sent = rig.assert_accounted();
    println!(
        "removed spool: {sent} items delivered, {} dropped (those in the removed directory)",
        rig.stat(|s| &s.dropped)
    );
}
