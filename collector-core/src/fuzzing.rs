//! Entry points for `collector-core/fuzz` into parsers that are not public API. Built only
//! with the `fuzzing` feature; nothing here is stable or meant for use.

pub use crate::security::proc_events::{parse as proc_events, ProcEvent};
pub use crate::security::sockets::{
    count_tcp, count_udp, parse_table_into, SocketRow, TcpCounts, UdpCounts,
};

#[cfg(feature = "elasticsearch")]
pub use crate::elastic::response::{classify as elastic_bulk_response, request_error};
#[cfg(feature = "sinks")]
pub use crate::sink::retry::parse_retry_after;

/// One runtime answer read as the clients read it: `kind` picks the answer (Docker list,
/// inspect or event stream, CRI-O inspect, containerd gRPC frames); `chunks` is the body as
/// it arrived. Returns how many containers, events or messages it held.
#[cfg(feature = "runtime")]
pub fn runtime_answer(kind: u8, chunks: &[&[u8]]) -> usize {
    crate::runtime::fuzz_answer(kind, chunks)
}

/// A sink's on-disk spool, driven as a sink drives it.
#[cfg(feature = "sinks")]
pub struct Spool(crate::sink::buffer::DiskSpool);

#[cfg(feature = "sinks")]
impl Spool {
    /// Opens (or creates) the spool in `dir`, bounded to `max_bytes`.
    pub fn open(dir: &std::path::Path, max_bytes: u64) -> std::io::Result<Spool> {
        crate::sink::buffer::DiskSpool::open(dir, max_bytes).map(Spool)
    }

    /// Appends items (the oldest dropped when over the bound).
    pub fn push(&mut self, items: &[Vec<u8>]) -> std::io::Result<()> {
        self.0.push(items).map_err(|(_, e)| e)
    }

    /// Reads and removes up to `n` items from the front, in batches of at most `batch`.
    pub fn take(&mut self, n: usize, batch: usize) -> std::io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut got = Vec::new();
        while out.len() < n {
            self.0
                .peek(batch.min(n - out.len()), usize::MAX, &mut got)?;
            if got.is_empty() {
                // A damaged tail may need one more commit to pass its segment.
                self.0.commit(0)?;
                self.0
                    .peek(batch.min(n - out.len()), usize::MAX, &mut got)?;
                if got.is_empty() {
                    break;
                }
            }
            let k = got.len().min(n - out.len());
            self.0.commit(k)?;
            out.extend(got.drain(..k));
        }
        Ok(out)
    }

    /// Items waiting.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// No item waits.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Items dropped (over the bound, or damaged), since opening.
    pub fn dropped(&self) -> u64 {
        self.0.dropped()
    }
}
