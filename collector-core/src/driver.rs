//! Running a collector on its own thread: [`Collector::spawn`] sweeps on the interval and hands
//! each snapshot out, so an async program never runs a sweep (blocking file I/O, tens of
//! milliseconds at a thousand containers) on its runtime's threads.
//!
//! ```
//! use std::time::Duration;
//! use collector_core::{Collector, Config};
//!
//! let driver = Collector::new(Config::default())?.spawn(Duration::from_millis(100))?;
//! driver.on_snapshot(|s| println!("{} containers", s.containers.len()));
//! std::thread::sleep(Duration::from_millis(300));
//! let collector = driver.stop(); // the last sweep has been handed out
//! assert!(collector.is_some(), "the collector comes back, to sweep again or drop");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::collector::{Collector, Snapshot};

type Callback = Box<dyn Fn(&Arc<Snapshot>) + Send>;

/// What the sweep thread shares with the [`Driver`].
#[derive(Default)]
struct Shared {
    latest: Mutex<Option<Arc<Snapshot>>>,
    callbacks: Mutex<Vec<Callback>>,
}

/// A collector sweeping on a thread of its own (from [`Collector::spawn`]). Dropping it stops
/// the thread after the sweep in progress; [`Driver::stop`] does the same and gives the
/// collector back.
pub struct Driver {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Collector>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl Collector {
    /// Sweeps every `interval` on a new thread (named `collector-sweep`), the first sweep at
    /// once. Each snapshot is kept as the latest and handed to every callback and sink fed
    /// from the driver. Fails only when the thread cannot be started.
    pub fn spawn(self, interval: Duration) -> std::io::Result<Driver> {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel::<()>();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("collector-sweep".into())
                .spawn(move || run(self, interval, &rx, &shared))?
        };
        Ok(Driver {
            shared,
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

/// The sweep loop: until told to stop (or the driver is gone).
fn run(
    mut collector: Collector,
    interval: Duration,
    stop: &mpsc::Receiver<()>,
    shared: &Shared,
) -> Collector {
    loop {
        let started = Instant::now();
        let snap = Arc::new(collector.sweep());
        for f in shared
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            f(&snap);
        }
        *shared.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(snap);
        match stop.recv_timeout(interval.saturating_sub(started.elapsed())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return collector,
        }
    }
}

impl Driver {
    /// The last snapshot, `None` before the first sweep has finished.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.shared
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Calls `f` with every snapshot from the next one on, on the sweep thread: it must be
    /// quick (hand the snapshot on, count, log), as the next sweep waits for it.
    pub fn on_snapshot(&self, f: impl Fn(&Arc<Snapshot>) + Send + 'static) {
        self.shared
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(f));
    }

    /// Hands every snapshot from the next one on to a sink running on an async runtime
    /// ([`crate::sink::SinkRunner`]); pushing never blocks the sweep thread.
    #[cfg(feature = "sinks")]
    pub fn feed(&self, feeder: crate::sink::SinkFeeder) {
        self.on_snapshot(move |s| feeder.push(s.clone()));
    }

    /// A watch channel with the latest snapshot, for async code that awaits the next one
    /// (`changed().await`) instead of being called.
    #[cfg(feature = "sinks")]
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Option<Arc<Snapshot>>> {
        let (tx, rx) = tokio::sync::watch::channel(self.latest());
        self.on_snapshot(move |s| {
            let _ = tx.send(Some(s.clone()));
        });
        rx
    }

    /// Stops sweeping once the sweep in progress has been handed out, and returns the
    /// collector (`None` if its thread panicked). Sinks fed from the driver then hold the last
    /// snapshot: shut them down after this (`SinkHandle::shutdown`) to wait for its delivery.
    pub fn stop(mut self) -> Option<Collector> {
        self.halt()
    }

    fn halt(&mut self) -> Option<Collector> {
        drop(self.stop.take());
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}
