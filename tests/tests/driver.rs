//! `Collector::spawn`: the collector sweeps on a thread of its own and hands each snapshot to
//! callbacks, a watch channel and sinks, so an async program's runtime never runs a sweep; and
//! stopping it, then shutting the sink down, delivers the last sweep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector_core::sink::{Outcome, RunnerConfig, Sink, SinkRunner};
use collector_core::{Collector, Config, Snapshot};
use tests::{sleeper, TestCgroup};

fn collector(id: &str) -> Collector {
    Collector::new(Config {
        include: vec![id.to_string()],
        ..Config::default()
    })
    .expect("cgroup hierarchy")
}

/// A sink that keeps the timestamp of every snapshot it delivers.
struct Recorder(Arc<Mutex<Vec<u64>>>);

impl Sink for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }

    fn encode(&mut self, snapshot: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>) {
        if metrics {
            out.push(snapshot.timestamp_ms.to_le_bytes().to_vec());
        }
    }

    async fn send(&mut self, batch: &[Vec<u8>]) -> Outcome {
        let mut got = self.0.lock().unwrap();
        for item in batch {
            let bytes: [u8; 8] = item.as_slice().try_into().expect("8 bytes");
            got.push(u64::from_le_bytes(bytes));
        }
        Outcome::Delivered
    }
}

#[test]
fn sweeps_on_its_own_thread_and_hands_every_snapshot_out() {
    let mut cg = TestCgroup::new("ccol-driver");
    cg.spawn(&mut sleeper());
    let driver = collector(&cg.id)
        .spawn(Duration::from_millis(100))
        .expect("the sweep thread");
    let seen = Arc::new(AtomicUsize::new(0));
    let on_thread = Arc::new(Mutex::new(None));
    {
        let (seen, on_thread) = (seen.clone(), on_thread.clone());
        driver.on_snapshot(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            *on_thread.lock().unwrap() = std::thread::current().name().map(String::from);
        });
    }
    let mut watch = driver.watch();
    std::thread::sleep(Duration::from_millis(1200));
    let latest = driver.latest().expect("a snapshot");
    assert!(latest.get(&cg.id).is_some(), "the test cgroup swept");
    let n = seen.load(Ordering::SeqCst);
    assert!(n >= 5, "{n} sweeps in 1.2 s at 100 ms");
    assert_eq!(
        on_thread.lock().unwrap().as_deref(),
        Some("collector-sweep"),
        "callbacks run on the sweep thread"
    );
    // The watch channel sees the next one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), watch.changed())
            .await
            .expect("a new snapshot within 2 s")
            .expect("the driver is alive");
    });
    assert!(watch.borrow().is_some());

    let collector = driver.stop().expect("the collector back");
    let after = seen.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(seen.load(Ordering::SeqCst), after, "no sweep after stop");
    assert!(collector.ids().any(|id| id == cg.id));
}

/// The async way: the sink task and a current-thread runtime that only awaits, the sweeps on
/// the driver's thread. Every sweep reaches the sink, the last one too, once the driver is
/// stopped and the sink shut down.
#[test]
fn a_sink_fed_by_the_driver_gets_every_sweep_the_last_too() {
    let mut cg = TestCgroup::new("ccol-driver-sink");
    cg.spawn(&mut sleeper());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let handed = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        let handle = SinkRunner::spawn(
            Recorder(got.clone()),
            RunnerConfig {
                interval: Duration::from_millis(10),
                ..RunnerConfig::default()
            },
        )
        .expect("the sink");
        let driver = collector(&cg.id)
            .spawn(Duration::from_millis(100))
            .expect("the sweep thread");
        {
            let handed = handed.clone();
            driver.on_snapshot(move |s| handed.lock().unwrap().push(s.timestamp_ms));
        }
        driver.feed(handle.feeder());
        tokio::time::sleep(Duration::from_millis(1000)).await;
        driver.stop().expect("the collector back");
        handle.shutdown(Duration::from_secs(5)).await;
    });
    let (got, handed) = (got.lock().unwrap().clone(), handed.lock().unwrap().clone());
    assert!(handed.len() >= 5, "{} sweeps", handed.len());
    assert_eq!(got, handed, "every sweep delivered, in order, the last too");
}
