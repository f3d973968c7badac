//! Push sinks: a [`Sink`] turns snapshots into items and delivers batches of them; a
//! [`SinkRunner`] gives each sink its own task with batching, retry with back-off and jitter,
//! a bounded queue (in memory or an on-disk spool that survives restarts) and counters.
//!
//! Delivery semantics: at least once. An item leaves the queue only when the sink says it was
//! delivered, or rejected for good (counted as failed and logged). When the queue's bound is
//! hit the oldest items go first, counted as dropped. Nothing else is lost.

pub mod buffer;
pub mod common;
pub mod retry;
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
        after: Option<Duration>,
        reason: String,
    },
    /// The server refused the batch as a whole (4xx). With more than one item the runner
    /// splits the batch to find the items at fault; a single refused item is dropped and
    /// counted.
    Rejected { reason: String },
    /// Some items landed; `retry` and `rejected` index into the batch.
    Partial {
        retry: Vec<usize>,
        rejected: Vec<(usize, String)>,
    },
}

/// A destination for snapshots.
pub trait Sink: Send + 'static {
    /// A short name for logs and metrics (`influxdb`, `elasticsearch`).
    fn kind(&self) -> &'static str;

    /// Appends the items for one snapshot: its metrics when `metrics` is set (the sink's
    /// interval has come round), and always its lifecycle events.
    fn encode(&mut self, snapshot: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>);

    /// Delivers one batch (never empty).
    fn send(&mut self, batch: &[Vec<u8>]) -> impl Future<Output = Outcome> + Send;
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
    /// Unix milliseconds of the last delivery (0 before the first).
    pub last_success_ms: AtomicU64,
}

impl SinkStats {
    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
