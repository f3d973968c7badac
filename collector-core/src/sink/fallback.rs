//! A disk spool that keeps delivery going when its directory stops working (remounted
//! read-only, removed, failing): the items move to memory, bounded like the memory queue,
//! and the spool is opened again every [`RETRY`]. Once it opens, what memory holds goes back
//! to disk. A spool that cannot be opened at start is an error: that is a setting to fix.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::buffer::{DiskSpool, MemoryBuffer};

/// How often a spool that stopped working is tried again.
pub(crate) const RETRY: Duration = Duration::from_secs(10);

/// The on-disk spool, or the memory queue while the spool cannot be used.
#[derive(Debug)]
pub struct Spooled {
    name: String,
    dir: PathBuf,
    max_bytes: u64,
    disk: Option<DiskSpool>,
    /// Empty while the spool works.
    mem: MemoryBuffer,
    retry_at: Instant,
    /// Dropped by spools given up on (the open one counts its own).
    dropped: u64,
}

impl Spooled {
    /// Opens the spool in `dir`; `queue_bytes` bounds the memory used while it cannot be.
    pub fn open(name: &str, dir: &Path, max_bytes: u64, queue_bytes: usize) -> io::Result<Self> {
        Ok(Spooled {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            max_bytes,
            disk: Some(DiskSpool::open(dir, max_bytes)?),
            mem: MemoryBuffer::new(queue_bytes),
            retry_at: Instant::now(),
            dropped: 0,
        })
    }

    pub(crate) fn push(&mut self, items: &[Vec<u8>]) {
        self.try_reopen();
        let rest = match self.disk.as_mut().map(|d| d.push(items)) {
            None => items,
            Some(Ok(())) => return,
            Some(Err((written, e))) => {
                self.give_up(&format!("writing: {e}"));
                &items[written..]
            }
        };
        self.mem.push(rest);
    }

    pub(crate) fn peek(&mut self, max_items: usize, max_bytes: usize, out: &mut Vec<Vec<u8>>) {
        if let Some(Err(e)) = self
            .disk
            .as_mut()
            .map(|d| d.peek(max_items, max_bytes, out))
        {
            self.give_up(&format!("reading: {e}"));
        }
        if self.disk.is_none() {
            self.mem.peek(max_items, max_bytes, out);
        }
    }

    pub(crate) fn commit(&mut self, n: usize) {
        match self.disk.as_mut().map(|d| d.commit(n)) {
            None => self.mem.commit(n),
            Some(Ok(())) => {}
            // The items are off the spool's books already; the rest moves to memory.
            Some(Err(e)) => self.give_up(&format!("writing its cursor: {e}")),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.disk.as_ref().map_or(0, DiskSpool::len) + self.mem.len()
    }

    pub(crate) fn in_memory(&self) -> bool {
        self.disk.is_none()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, DiskSpool::bytes)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped + self.disk.as_ref().map_or(0, DiskSpool::dropped) + self.mem.dropped
    }

    /// Moves what the spool can still read to memory and counts the rest as dropped.
    fn give_up(&mut self, why: &str) {
        let Some(mut d) = self.disk.take() else {
            return;
        };
        let mut batch = Vec::new();
        let mut moved = 0;
        while d.peek(1024, 4 << 20, &mut batch).is_ok() && !batch.is_empty() {
            self.mem.push(&batch);
            moved += batch.len();
            // Only the cursor can fail to be written; the items are off the books either way.
            let _ = d.commit(batch.len());
        }
        let lost = d.len();
        self.dropped += d.dropped() + lost;
        self.retry_at = Instant::now() + RETRY;
        tracing::error!(
            sink = %self.name,
            dir = %self.dir.display(),
            moved,
            lost,
            "the spool stopped working ({why}); queueing in memory and trying it again every {}s",
            RETRY.as_secs()
        );
    }

    /// Opens the spool again once it is due, emptied (memory holds every item it had that
    /// could be read), and moves memory's items onto it.
    fn try_reopen(&mut self) {
        if self.disk.is_some() || Instant::now() < self.retry_at {
            return;
        }
        self.retry_at = Instant::now() + RETRY;
        match clear(&self.dir).and_then(|()| DiskSpool::open(&self.dir, self.max_bytes)) {
            Ok(d) => {
                self.disk = Some(d);
                let items = self.mem.take_all();
                tracing::info!(sink = %self.name, dir = %self.dir.display(), items = items.len(), "the spool works again");
                self.push(&items);
            }
            Err(e) => tracing::debug!(sink = %self.name, "the spool still does not work: {e}"),
        }
    }
}

/// Removes a spool's segments and cursor, leaving the directory (made if missing).
fn clear(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".seg") || name.starts_with("cursor") {
            match std::fs::remove_file(e.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
        range.map(|i| format!("item-{i:05}").into_bytes()).collect()
    }

    fn drain(s: &mut Spooled) -> Vec<Vec<u8>> {
        let (mut all, mut batch) = (Vec::new(), Vec::new());
        loop {
            s.peek(3, 1 << 20, &mut batch);
            if batch.is_empty() {
                return all;
            }
            let n = batch.len();
            all.append(&mut batch);
            s.commit(n);
        }
    }

    #[test]
    fn a_removed_directory_falls_back_to_memory_then_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut s = Spooled::open("t", &path, 1 << 20, 1 << 20).unwrap();
        s.push(&items(0..5));
        std::fs::remove_dir_all(&path).unwrap();
        s.push(&items(5..8));
        assert!(s.disk.is_none(), "still on the removed directory");
        assert_eq!((s.len(), s.dropped()), (3, 5));
        assert_eq!(drain(&mut s), items(5..8));
        s.push(&items(8..10));
        // Due again: the directory is made again and memory's items move onto it.
        s.retry_at = Instant::now();
        s.push(&items(10..11));
        assert!(s.disk.is_some() && path.is_dir());
        assert_eq!(s.mem.len(), 0);
        assert_eq!(drain(&mut s), items(8..11));
        assert_eq!(s.dropped(), 5);
    }
}
