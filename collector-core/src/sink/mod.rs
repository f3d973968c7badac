//! Push sinks: a [`Sink`] turns snapshots into items and delivers batches of them; a
//! [`SinkRunner`] gives each sink its own task with batching, retry with back-off and jitter,
//! a bounded queue (in memory or an on-disk spool that survives restarts) and counters.
//!
//! Delivery semantics: at least once. An item leaves the queue only when the sink says it was
//! delivered, or rejected for good (counted as failed and logged). When the queue's bound is
//! hit the oldest items go first, counted as dropped. Nothing else is lost.

pub(crate) mod buffer;
pub(crate) mod common;
mod fallback;
pub(crate) mod retry;
mod runner;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::collector::Snapshot;

pub use runner::{RunnerConfig, SinkFeeder, SinkHandle, SinkRunner};

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every item landed.
    Delivered,
    /// Nothing landed, and trying again later may work (server down, 5xx, 429, timeout).
    Retry {
        /// The server's `Retry-After`, if it sent one: wait at least this long.
        after: Option<Duration>,
        /// Why, for the logs.
        reason: String,
    },
    /// The server refused the batch as a whole (4xx). With more than one item the runner
    /// splits the batch to find the items at fault; a single refused item is dropped and
    /// counted.
    Rejected {
        /// Why, for the logs.
        reason: String,
    },
    /// Some items landed; `retry` and `rejected` index into the batch.
    Partial {
        /// Positions of the items to try again.
        retry: Vec<usize>,
        /// Positions of the items refused for good, each with the reason.
        rejected: Vec<(usize, String)>,
    },
}

/// A destination for snapshots. [`SinkRunner`] runs one on a task of its own: it calls
/// `encode` for each snapshot fed to it, queues the items (in memory or spooled to disk),
/// and calls `send` with batches of them, retrying with back-off as the outcome says.
///
/// ```
/// use std::time::Duration;
/// use collector_core::sink::{Outcome, RunnerConfig, Sink, SinkRunner};
/// use collector_core::{Collector, Config, Snapshot};
///
/// /// Counts the containers it is handed.
/// struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);
///
/// impl Sink for Count {
///     fn kind(&self) -> &'static str {
///         "count"
///     }
///     fn encode(&mut self, snapshot: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>) {
///         if metrics {
///             out.extend(snapshot.containers.iter().map(|c| c.id.clone().into_bytes()));
///         }
///     }
///     async fn send(&mut self, batch: &[Vec<u8>]) -> Outcome {
///         self.0.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
///         Outcome::Delivered
///     }
/// }
///
/// let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let sink = SinkRunner::spawn(Count(seen.clone()), RunnerConfig::default())?;
///     let driver = Collector::new(Config::default())?.spawn(Duration::from_secs(10))?;
///     driver.feed(sink.feeder());
///     tokio::time::sleep(Duration::from_millis(200)).await;
///     driver.stop();
///     sink.shutdown(Duration::from_secs(5)).await; // delivers what it holds
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// assert!(seen.load(std::sync::atomic::Ordering::Relaxed) >= 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Sink: Send + 'static {
    /// A short name for logs and metrics (`influxdb`, `elasticsearch`).
    fn kind(&self) -> &'static str;

    /// Appends the items for one snapshot: its metrics when `metrics` is set (the sink's
    /// interval has come round), and always its lifecycle events.
    fn encode(&mut self, snapshot: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>);

    /// Delivers one batch (never empty).
    fn send(&mut self, batch: &[Vec<u8>]) -> impl Future<Output = Outcome> + Send;

    /// Asks the server whether a delivery would be taken, storing nothing (a write of no
    /// items where the API takes one, else a request its API answers only with the
    /// credentials): what it answered, or why it did not do so with a success.
    fn probe(&mut self) -> impl Future<Output = Result<String, String>> + Send {
        async { Err("this sink cannot be probed".to_string()) }
    }
}

/// Sends a probe request: `Ok` with the status on a 2xx answer, else `Err` with the status and
/// the start of the body, or the transport's error. `what` names the request (`POST url`),
/// its credentials left out.
#[cfg(any(
    feature = "influxdb",
    feature = "elasticsearch",
    feature = "remote_write"
))]
pub(crate) async fn probe_request(
    req: reqwest::RequestBuilder,
    what: String,
) -> Result<String, String> {
    let resp = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(format!("{what}: HTTP {}", status.as_u16()));
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    Err(format!("{what}: HTTP {}: {}", status.as_u16(), body.trim()))
}

/// Counters of one sink, shared with whoever exposes them.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Items delivered.
    pub sent: AtomicU64,
    /// Items the server refused for good.
    pub failed: AtomicU64,
    /// Items dropped because the queue was full (oldest first).
    pub dropped: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Items waiting.
    pub queued: AtomicU64,
    /// Bytes of the on-disk spool (0 without one).
    pub spool_bytes: AtomicU64,
    /// 1 while the spool's directory cannot be used and items wait in memory instead.
    pub spool_in_memory: AtomicU64,
    /// Unix milliseconds of the last delivery (0 before the first).
    pub last_success_ms: AtomicU64,
}

impl SinkStats {
    /// Reads one of the counters above.
    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
