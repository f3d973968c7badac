//! The connections being served, at most `limit` of them, so that clients cannot take the
//! descriptors the collector needs (they share one open-files limit) nor crowd others out.
//! At the limit a new connection takes the place of the oldest idle one (no request or
//! response body in flight: a keep-alive connection between scrapes, or one that has sent
//! nothing, or only part of its headers); when every connection is busy it is refused.
//! A client that takes no byte of its answer for the write timeout is cut (`stalled`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_io_timeout::TimeoutStream;

/// The default of `--web.write-timeout`: how long an answer may wait for the client to take
/// any of it.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

/// The default of `--web.max-connections`: well inside the eighth of the open-files limit
/// (at least 1,024) that the collector leaves to the rest of the process.
pub const DEFAULT_LIMIT: usize = 512;

/// The open connections and what became of those closed early.
#[derive(Debug)]
pub struct Connections {
    limit: usize,
    stall: Duration,
    table: Mutex<Table>,
    /// Idle connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// New connections refused: every open one was busy.
    pub refused: AtomicU64,
    /// Answers cut because the client took none of it for the write timeout.
    pub stalled: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    /// By id, so in the order they came: the first idle one is the oldest.
    open: BTreeMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    /// Requests and response bodies in flight.
    busy: usize,
    close: Arc<Notify>,
}

impl Connections {
    /// At most `limit` connections (at least 1); answers cut after `stall` without progress.
    pub fn new(limit: usize, stall: Duration) -> Arc<Connections> {
        Arc::new(Connections {
            limit: limit.max(1),
            stall,
            table: Mutex::new(Table::default()),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.table().open.len()
    }

    /// The most open at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A place for a new connection, made by closing the oldest idle one when all are taken;
    /// `None` when every connection is busy.
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let mut t = self.table();
        if t.open.len() >= self.limit {
            let idle = t.open.iter().find(|(_, e)| e.busy == 0).map(|(id, _)| *id);
            match idle.and_then(|id| t.open.remove(&id)) {
                Some(e) => {
                    e.close.notify_one();
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let id = t.next;
        t.next += 1;
        let close = Arc::new(Notify::new());
        t.open.insert(
            id,
            Entry {
                busy: 0,
                close: close.clone(),
            },
        );
        Some(Ticket {
            conns: self.clone(),
            id,
            close,
        })
    }

    fn set_busy(&self, id: u64, delta: isize) {
        if let Some(e) = self.table().open.get_mut(&id) {
            e.busy = e.busy.saturating_add_signed(delta);
        }
    }
}

/// A connection's place: given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    conns: Arc<Connections>,
    id: u64,
    close: Arc<Notify>,
}

impl Ticket {
    /// Resolves when the connection must close to make room for another.
    pub async fn evicted(&self) {
        self.close.notified().await;
    }

    /// Marks the connection busy until the guard is dropped (with the response body).
    pub fn busy(&self) -> Busy {
        self.marker().busy()
    }

    /// What the connection's requests mark it busy with.
    pub fn marker(&self) -> Marker {
        Marker {
            conns: self.conns.clone(),
            id: self.id,
        }
    }

    /// The connection's stream, cut with an error when a write makes no progress for the
    /// write timeout.
    pub fn guard<S: AsyncRead + AsyncWrite>(&self, stream: S) -> Pin<Box<Stalls<S>>> {
        let mut s = TimeoutStream::new(stream);
        s.set_write_timeout(Some(self.conns.stall));
        Box::pin(Stalls {
            inner: s,
            conns: self.conns.clone(),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.conns.table().open.remove(&self.id);
    }
}

/// Marks one connection busy, for its service.
#[derive(Debug, Clone)]
pub struct Marker {
    conns: Arc<Connections>,
    id: u64,
}

impl Marker {
    /// Busy until the guard is dropped.
    pub fn busy(&self) -> Busy {
        self.conns.set_busy(self.id, 1);
        Busy {
            conns: self.conns.clone(),
            id: self.id,
        }
    }
}

/// A request or response body in flight on a connection.
#[derive(Debug)]
pub struct Busy {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conns.set_busy(self.id, -1);
    }
}

/// A response body that keeps its connection busy until it has been sent or dropped.
pub struct Tracked<B> {
    inner: B,
    busy: Option<Busy>,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, busy: Busy) -> Self {
        Tracked {
            inner,
            busy: Some(busy),
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.busy = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The stream with its write timeout, counting the answers it cut.
    pub struct Stalls<S> {
        #[pin]
        inner: TimeoutStream<S>,
        conns: Arc<Connections>,
    }
}

impl<S: AsyncRead + AsyncWrite> Stalls<S> {
    fn count<T>(conns: &Connections, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(e)) = &r {
            if e.kind() == std::io::ErrorKind::TimedOut {
                conns.stalled.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncRead for Stalls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncWrite for Stalls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        Self::count(this.conns, this.inner.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        Self::count(this.conns, this.inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        Self::count(this.conns, this.inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let c = Connections::new(2, DEFAULT_STALL);
        let a = c.admit().expect("room");
        let b = c.admit().expect("room");
        let a_busy = a.busy();
        // Full: b is the oldest idle one.
        let n = c.admit().expect("b makes room");
        assert_eq!(c.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(c.open(), 2);
        let _n_busy = n.busy();
        // Both busy: refused.
        assert!(c.admit().is_none());
        assert_eq!(c.refused.load(Ordering::Relaxed), 1);
        // a's request is done: it is idle, and goes for the next one.
        drop(a_busy);
        let _m = c.admit().expect("a makes room");
        assert_eq!(c.evicted.load(Ordering::Relaxed), 2);
        drop(b);
        drop(a);
        assert_eq!(c.open(), 2, "n and m");
    }

    #[tokio::test]
    async fn an_evicted_connection_is_told() {
        let c = Connections::new(1, DEFAULT_STALL);
        let a = c.admit().expect("room");
        let _b = c.admit().expect("a makes room");
        tokio::time::timeout(Duration::from_secs(1), a.evicted())
            .await
            .expect("told to close");
    }
}
