//! One task per sink: encode snapshots into the queue, deliver batches, back off on failure.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::buffer::{Buffer, MemoryBuffer};
use super::fallback::Spooled;
use super::retry::Backoff;
use super::{Outcome, Sink, SinkStats};
use crate::collector::Snapshot;

/// How a sink is run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    /// A name for logs (several sinks of one kind may run).
    pub name: String,
    /// Metrics are pushed at most this often (events always).
    pub interval: Duration,
    /// A batch holds at most this many items and bytes.
    pub batch_items: usize,
    /// At most this many bytes of items in a batch; 4 MiB by default.
    pub batch_bytes: usize,
    /// Bound of the in-memory queue, in bytes of encoded items.
    pub queue_bytes: usize,
    /// An on-disk spool instead of the memory queue: survives restarts of the process.
    pub spool_dir: Option<PathBuf>,
    /// Bound of the spool on disk, in bytes; 1 GiB by default.
    pub spool_bytes: u64,
    /// A request taking longer than this counts as failed and is retried.
    pub timeout: Duration,
    /// The first wait after a failure; it doubles per failure. 500 ms by default.
    pub backoff_base: Duration,
    /// The longest wait between attempts; 60 s by default.
    pub backoff_max: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            name: "sink".into(),
            interval: Duration::from_secs(10),
            batch_items: 5_000,
            batch_bytes: 4 << 20,
            queue_bytes: 64 << 20,
            spool_dir: None,
            spool_bytes: 1 << 30,
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Feeds a running sink and reads its counters.
#[derive(Debug)]
pub struct SinkHandle {
    tx: mpsc::UnboundedSender<Arc<Snapshot>>,
    /// The sink's counters, live.
    pub stats: Arc<SinkStats>,
    task: tokio::task::JoinHandle<()>,
}

/// A cloneable way to hand snapshots to a running sink from any thread.
#[derive(Debug, Clone)]
pub struct SinkFeeder {
    tx: mpsc::UnboundedSender<Arc<Snapshot>>,
}

impl SinkFeeder {
    /// Hands a snapshot to the sink; never blocks.
    pub fn push(&self, snapshot: Arc<Snapshot>) {
        let _ = self.tx.send(snapshot);
    }
}

impl SinkHandle {
    /// Hands a snapshot to the sink; never blocks.
    pub fn push(&self, snapshot: Arc<Snapshot>) {
        let _ = self.tx.send(snapshot);
    }

    /// A feeder that can be cloned and sent to other threads.
    pub fn feeder(&self) -> SinkFeeder {
        SinkFeeder {
            tx: self.tx.clone(),
        }
    }

    /// Stops taking snapshots, tries to deliver what is queued until `grace` runs out, and
    /// returns. Undelivered items stay in the spool, if there is one.
    /// Feeders handed out must be dropped first, or the task keeps waiting for them.
    pub async fn shutdown(self, grace: Duration) {
        drop(self.tx);
        let _ = tokio::time::timeout(grace, self.task).await;
    }
}

/// Starts sinks: see [`SinkRunner::spawn`].
pub struct SinkRunner;

impl SinkRunner {
    /// Starts the sink's task on the current tokio runtime. Fails only when the spool cannot
    /// be opened.
    pub fn spawn<S: Sink>(sink: S, cfg: RunnerConfig) -> std::io::Result<SinkHandle> {
        let buffer = match &cfg.spool_dir {
            Some(dir) => Buffer::Disk(Box::new(Spooled::open(
                &cfg.name,
                dir,
                cfg.spool_bytes,
                cfg.queue_bytes,
            )?)),
            None => Buffer::Memory(MemoryBuffer::new(cfg.queue_bytes)),
        };
        let stats = Arc::new(SinkStats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(sink, cfg, buffer, rx, stats.clone()));
        Ok(SinkHandle { tx, stats, task })
    }
}

struct State<S> {
    sink: S,
    cfg: RunnerConfig,
    buffer: Buffer,
    stats: Arc<SinkStats>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// Set while the server keeps failing, so a long outage logs once, not every attempt.
    failing_since: Option<Instant>,
    batch: Vec<Vec<u8>>,
}

async fn run<S: Sink>(
    sink: S,
    cfg: RunnerConfig,
    buffer: Buffer,
    mut rx: mpsc::UnboundedReceiver<Arc<Snapshot>>,
    stats: Arc<SinkStats>,
) {
    let backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
    let mut st = State {
        sink,
        cfg,
        buffer,
        stats,
        backoff,
        retry_at: None,
        failing_since: None,
        batch: Vec::new(),
    };
    let mut last_metrics_ms: Option<u64> = None;
    let mut items = Vec::new();
    st.publish_counts();
    loop {
        let next = match st.retry_at {
            Some(at) => tokio::select! {
                s = rx.recv() => s.map(Some),
                _ = tokio::time::sleep_until(at.into()) => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        match next {
            // The handle is gone: one last delivery attempt, then stop.
            None => {
                st.retry_at = None;
                st.deliver().await;
                return;
            }
            Some(Some(snap)) => {
                let interval_ms = st.cfg.interval.as_millis() as u64;
                // A little slack so sweeps that land just early are not skipped.
                let due = last_metrics_ms
                    .is_none_or(|t| snap.timestamp_ms + interval_ms / 20 >= t + interval_ms);
                if due {
                    last_metrics_ms = Some(snap.timestamp_ms);
                }
                items.clear();
                st.sink.encode(&snap, due, &mut items);
                if !items.is_empty() {
                    st.buffer.push(&items);
                }
            }
            Some(None) => {}
        }
        if st.retry_at.is_none_or(|at| Instant::now() >= at) {
            st.retry_at = None;
            st.deliver().await;
        }
        st.publish_counts();
    }
}

impl<S: Sink> State<S> {
    fn publish_counts(&self) {
        self.stats
            .queued
            .store(self.buffer.len(), Ordering::Relaxed);
        self.stats
            .dropped
            .store(self.buffer.dropped(), Ordering::Relaxed);
        if matches!(self.buffer, Buffer::Disk(_)) {
            self.stats
                .spool_bytes
                .store(self.buffer.bytes(), Ordering::Relaxed);
            self.stats
                .spool_in_memory
                .store(u64::from(self.buffer.spool_in_memory()), Ordering::Relaxed);
        }
    }

    /// Sends batches until the queue is empty or the server fails.
    async fn deliver(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        while !self.buffer.is_empty() {
            self.buffer
                .peek(self.cfg.batch_items, self.cfg.batch_bytes, &mut batch);
            if batch.is_empty() {
                break;
            }
            let n = batch.len();
            match self.send_splitting(&batch).await {
                Ok(requeue) => {
                    self.buffer.commit(n);
                    if !requeue.is_empty() {
                        let again: Vec<Vec<u8>> =
                            requeue.into_iter().map(|i| batch[i].clone()).collect();
                        self.buffer.push(&again);
                        self.schedule_retry(None, "some items must be retried");
                        break;
                    }
                }
                Err((after, reason)) => {
                    self.schedule_retry(after, &reason);
                    break;
                }
            }
            self.publish_counts();
        }
        self.batch = batch;
        self.publish_counts();
    }

    fn schedule_retry(&mut self, after: Option<Duration>, reason: &str) {
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        let wait = self.backoff.next(after);
        self.retry_at = Some(Instant::now() + wait);
        if self.failing_since.is_none() {
            self.failing_since = Some(Instant::now());
            tracing::warn!(
                sink = %self.cfg.name,
                queued = self.buffer.len(),
                "delivery failed, retrying with back-off (logged once until it recovers): {reason}"
            );
        } else {
            tracing::debug!(sink = %self.cfg.name, ?wait, "still failing: {reason}");
        }
    }

    /// Sends a batch; on a whole-batch refusal, halves it until the refused items are
    /// isolated (servers like InfluxDB 1.x refuse a batch for one bad point). Returns the
    /// items to requeue, or a failure to retry the whole batch later.
    async fn send_splitting(
        &mut self,
        batch: &[Vec<u8>],
    ) -> Result<Vec<usize>, (Option<Duration>, String)> {
        let mut requeue = Vec::new();
        let mut stack = vec![(0usize, batch.len())];
        let mut first = true;
        while let Some((lo, hi)) = stack.pop() {
            let part = &batch[lo..hi];
            let outcome = match tokio::time::timeout(self.cfg.timeout, self.sink.send(part)).await {
                Ok(o) => o,
                Err(_) => Outcome::Retry {
                    after: None,
                    reason: format!("no answer within {:?}", self.cfg.timeout),
                },
            };
            match outcome {
                Outcome::Delivered => self.delivered(part.len() as u64),
                Outcome::Retry { after, reason } => {
                    if first {
                        return Err((after, reason));
                    }
                    // Part of a split batch: keep the rest of the work, retry this part later.
                    requeue.extend(lo..hi);
                }
                Outcome::Rejected { reason } if part.len() > 1 => {
                    tracing::debug!(sink = %self.cfg.name, items = part.len(), "batch refused, splitting: {reason}");
                    let mid = lo + part.len() / 2;
                    stack.push((mid, hi));
                    stack.push((lo, mid));
                }
                Outcome::Rejected { reason } => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    let item = String::from_utf8_lossy(&part[0]);
                    tracing::warn!(sink = %self.cfg.name, "item refused, dropped: {reason}: {:.200}", item);
                }
                Outcome::Partial { retry, rejected } => {
                    let ok = part.len().saturating_sub(retry.len() + rejected.len());
                    if ok > 0 {
                        self.delivered(ok as u64);
                    }
                    self.stats
                        .failed
                        .fetch_add(rejected.len() as u64, Ordering::Relaxed);
                    if let Some((_, reason)) = rejected.first() {
                        tracing::warn!(
                            sink = %self.cfg.name,
                            refused = rejected.len(),
                            "items refused, dropped; first reason: {reason}"
                        );
                    }
                    requeue.extend(
                        retry
                            .into_iter()
                            .filter(|&i| i < part.len())
                            .map(|i| lo + i),
                    );
                }
            }
            first = false;
        }
        Ok(requeue)
    }

    fn delivered(&mut self, n: u64) {
        self.stats.sent.fetch_add(n, Ordering::Relaxed);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.stats.last_success_ms.store(now_ms, Ordering::Relaxed);
        self.backoff.reset();
        if let Some(since) = self.failing_since.take() {
            tracing::info!(sink = %self.cfg.name, after = ?since.elapsed(), "delivery recovered");
        }
    }
}
