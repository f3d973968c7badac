//! One `/metrics` body per sweep, format and encoding, made once and shared by every scrape
//! of that sweep: two hundred scrapers cost one rendering and two hundred streams of bytes, so
//! a well-behaved scraper among many is answered about as fast as alone. The body is held
//! until a later sweep's takes its place and its last reader is done.
//!
//! Gzipped bodies (Prometheus, VictoriaMetrics and the OpenTelemetry collector all ask for
//! gzip) are always shared: a tenth of the text, some 4 MB at 10,000 containers. Plain text is
//! shared while the last plain body was at most `PLAIN_SHARED_MAX`; above that (a node of
//! some 2,000 containers or more) holding it whole costs more than writing it per scrape in
//! 64 KiB pieces, which is what happens then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use collector_core::prometheus::Format;
use collector_core::Snapshot;
use tokio::sync::{mpsc, Notify};

use crate::body::Piece;

/// Plain-text bodies up to this size are shared.
pub const PLAIN_SHARED_MAX: u64 = 16 << 20;

/// The latest shared body of each format and encoding.
pub struct SharedBodies {
    /// Prometheus text, OpenMetrics; plain, then gzipped.
    slots: Mutex<[Option<Arc<Shared>>; 4]>,
    /// The size of the last plain body written, shared or not.
    plain_bytes: AtomicU64,
}

impl Default for SharedBodies {
    fn default() -> Self {
        SharedBodies {
            slots: Mutex::default(),
            plain_bytes: AtomicU64::new(0),
        }
    }
}

/// A body being written, or written: its pieces so far and whether it ended.
pub struct Shared {
    /// The sweep it is of: its start time and where its snapshot lives.
    key: (u64, usize),
    state: Mutex<State>,
    grew: Notify,
}

#[derive(Default)]
struct State {
    pieces: Vec<Bytes>,
    /// `Some(true)` once whole, `Some(false)` when the writing failed part way.
    end: Option<bool>,
}

fn key(snap: &Arc<Snapshot>) -> (u64, usize) {
    (snap.timestamp_ms, Arc::as_ptr(snap) as usize)
}

impl SharedBodies {
    /// Whether a plain-text body is shared now: the last one was small enough to hold.
    pub fn share_plain(&self) -> bool {
        self.plain_bytes.load(Ordering::Relaxed) <= PLAIN_SHARED_MAX
    }

    /// The size of a plain-text body just written, for `share_plain`.
    pub fn plain_written(&self, bytes: u64) {
        self.plain_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The shared body of `snap` in `format`, gzipped or not, and whether the caller must
    /// write it (it is new).
    pub fn get(&self, snap: &Arc<Snapshot>, format: Format, gzip: bool) -> (Arc<Shared>, bool) {
        let slot = match format {
            Format::PrometheusText => 0,
            Format::OpenMetrics => 1,
        } + 2 * usize::from(gzip);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = &slots[slot] {
            if s.key == key(snap) {
                return (s.clone(), false);
            }
        }
        let s = Arc::new(Shared {
            key: key(snap),
            state: Mutex::new(State::default()),
            grew: Notify::new(),
        });
        slots[slot] = Some(s.clone());
        (s, true)
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One more piece, for every reader.
    pub fn push(&self, piece: Bytes) {
        self.state().pieces.push(piece);
        self.grew.notify_waiters();
    }

    /// The end: whole (`ok`), or failed part way (readers' bodies then end in an error).
    pub fn finish(&self, ok: bool) {
        self.state().end = Some(ok);
        self.grew.notify_waiters();
    }

    /// Sends every piece, as they come, then the end, to one reader's body.
    pub async fn stream(self: Arc<Self>, tx: mpsc::Sender<Piece>) {
        let mut next = 0;
        loop {
            // Registered before looking, so a piece pushed in between is not missed.
            let grew = self.grew.notified();
            tokio::pin!(grew);
            grew.as_mut().enable();
            let (piece, end) = {
                let st = self.state();
                (st.pieces.get(next).cloned(), st.end)
            };
            if let Some(p) = piece {
                if tx.send(Piece::Data(p)).await.is_err() {
                    return;
                }
                next += 1;
                continue;
            }
            match end {
                Some(true) => {
                    let _ = tx.send(Piece::End).await;
                    return;
                }
                // Dropping the sender without `End` ends the body in an error.
                Some(false) => return,
                None => grew.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_reader_gets_every_piece_and_the_end() {
        let bodies = SharedBodies::default();
        let snap = Arc::new(Snapshot::default());
        let (shared, write) = bodies.get(&snap, Format::PrometheusText, true);
        assert!(write);
        let (again, write_again) = bodies.get(&snap, Format::PrometheusText, true);
        assert!(!write_again && Arc::ptr_eq(&shared, &again));
        assert!(
            bodies.get(&snap, Format::OpenMetrics, true).1,
            "another format"
        );
        assert!(bodies.get(&snap, Format::PrometheusText, false).1, "plain");

        shared.push(Bytes::from_static(b"a"));
        let mut readers = Vec::new();
        for _ in 0..3 {
            let (tx, mut rx) = mpsc::channel(1);
            tokio::spawn(shared.clone().stream(tx));
            readers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(p) = rx.recv().await {
                    match p {
                        Piece::Data(b) => got.extend_from_slice(&b),
                        Piece::End => return Some(got),
                    }
                }
                None
            }));
        }
        tokio::task::yield_now().await;
        shared.push(Bytes::from_static(b"b"));
        shared.finish(true);
        for r in readers {
            assert_eq!(r.await.expect("reader").as_deref(), Some(&b"ab"[..]));
        }
        // A later sweep takes the slot.
        let later = Arc::new(Snapshot {
            timestamp_ms: 1,
            ..Snapshot::default()
        });
        assert!(bodies.get(&later, Format::PrometheusText, true).1);
    }

    #[test]
    fn plain_text_is_shared_while_it_is_small_enough() {
        let bodies = SharedBodies::default();
        assert!(bodies.share_plain(), "before any body");
        bodies.plain_written(PLAIN_SHARED_MAX + 1);
        assert!(!bodies.share_plain());
        bodies.plain_written(PLAIN_SHARED_MAX);
        assert!(bodies.share_plain());
    }

    #[tokio::test]
    async fn a_failed_writing_ends_readers_without_the_end() {
        let bodies = SharedBodies::default();
        let snap = Arc::new(Snapshot::default());
        let (shared, _) = bodies.get(&snap, Format::OpenMetrics, true);
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(shared.clone().stream(tx));
        shared.push(Bytes::from_static(b"part"));
        shared.finish(false);
        assert!(matches!(rx.recv().await, Some(Piece::Data(_))));
        assert!(rx.recv().await.is_none(), "closed without End");
    }
}
