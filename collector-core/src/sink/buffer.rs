//! Where a sink's items wait for delivery: in memory, or in an on-disk spool that survives a
//! restart. Both are bounded in bytes; when full, the oldest items go first and are counted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A FIFO of encoded items.
#[derive(Debug)]
pub enum Buffer {
    /// Held in memory; lost on restart.
    Memory(MemoryBuffer),
    /// Held in an on-disk spool that survives a restart.
    Disk(DiskSpool),
}

impl Buffer {
    /// Appends items, dropping the oldest ones if the bound is exceeded.
    pub fn push(&mut self, items: &[Vec<u8>]) -> io::Result<()> {
        match self {
            Buffer::Memory(b) => {
                b.push(items);
                Ok(())
            }
            Buffer::Disk(d) => d.push(items),
        }
    }

    /// Up to `max_items` / `max_bytes` from the front (at least one item when not empty),
    /// without removing them.
    pub fn peek(
        &mut self,
        max_items: usize,
        max_bytes: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> io::Result<()> {
        match self {
            Buffer::Memory(b) => {
                b.peek(max_items, max_bytes, out);
                Ok(())
            }
            Buffer::Disk(d) => d.peek(max_items, max_bytes, out),
        }
    }

    /// Removes the first `n` items (delivered, or given up on).
    pub fn commit(&mut self, n: usize) -> io::Result<()> {
        match self {
            Buffer::Memory(b) => {
                b.commit(n);
                Ok(())
            }
            Buffer::Disk(d) => d.commit(n),
        }
    }

    /// How many items wait.
    pub fn len(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.items.len() as u64,
            Buffer::Disk(d) => d.items,
        }
    }

    /// No item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the waiting items take (framing included for the disk spool).
    pub fn bytes(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.bytes as u64,
            Buffer::Disk(d) => d.bytes,
        }
    }

    /// Items dropped to keep within the bound, since start.
    pub fn dropped(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.dropped,
            Buffer::Disk(d) => d.dropped,
        }
    }
}

/// Items in memory, bounded by their total size.
#[derive(Debug)]
pub struct MemoryBuffer {
    items: VecDeque<Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
    dropped: u64,
}

impl MemoryBuffer {
    /// An empty buffer holding at most `max_bytes` of items.
    pub fn new(max_bytes: usize) -> Self {
        MemoryBuffer {
            items: VecDeque::new(),
            bytes: 0,
            max_bytes,
            dropped: 0,
        }
    }

    fn push(&mut self, items: &[Vec<u8>]) {
        for it in items {
            self.bytes += it.len();
            self.items.push_back(it.clone());
        }
        while self.bytes > self.max_bytes {
            let Some(old) = self.items.pop_front() else {
                break;
            };
            self.bytes -= old.len();
            self.dropped += 1;
        }
    }

    fn peek(&self, max_items: usize, max_bytes: usize, out: &mut Vec<Vec<u8>>) {
        out.clear();
        let mut size = 0;
        for it in self.items.iter().take(max_items.max(1)) {
            if !out.is_empty() && size + it.len() > max_bytes {
                break;
            }
            size += it.len();
            out.push(it.clone());
        }
    }

    fn commit(&mut self, n: usize) {
        for _ in 0..n {
            let Some(old) = self.items.pop_front() else {
                break;
            };
            self.bytes -= old.len();
        }
    }
}

/// Items in segment files under a directory, each record framed as length, CRC-32 and bytes.
/// A cursor file says how far delivery got. A torn record at the end of the last segment (the
/// process died mid-write) is cut off on open; nothing before it is lost.
#[derive(Debug)]
pub struct DiskSpool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Segments oldest first: (sequence number, size in bytes, records in it).
    segments: VecDeque<(u64, u64, u64)>,
    /// Where reading stands: in segment `segments[0]`, at this byte offset, this many records in.
    read_offset: u64,
    read_records: u64,
    writer: Option<(u64, File)>,
    items: u64,
    bytes: u64,
    dropped: u64,
    /// Framed sizes of the items returned by the last `peek`, for `commit`.
    peeked: Vec<u64>,
}

const HEADER: u64 = 8;
const CURSOR: &str = "cursor";

impl DiskSpool {
    /// Opens (or creates) a spool in `dir`, bounded to `max_bytes` on disk.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<DiskSpool> {
        fs::create_dir_all(dir)?;
        let mut seqs: Vec<u64> = fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        let (cursor_seq, cursor_off) = read_cursor(dir).unwrap_or((0, 0));
        let mut spool = DiskSpool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 16 << 20),
            segments: VecDeque::new(),
            read_offset: 0,
            read_records: 0,
            writer: None,
            items: 0,
            bytes: 0,
            dropped: 0,
            peeked: Vec::new(),
        };
        for seq in seqs {
            let path = spool.segment_path(seq);
            if seq < cursor_seq {
                // Fully delivered before the restart.
                let _ = fs::remove_file(&path);
                continue;
            }
            let (valid_len, records, skipped) =
                scan(&path, if seq == cursor_seq { cursor_off } else { 0 })?;
            if fs::metadata(&path)?.len() != valid_len {
                // Cut a torn tail so appends continue from a clean record boundary.
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(valid_len)?;
            }
            if seq == cursor_seq && spool.segments.is_empty() {
                spool.read_offset = cursor_off.min(valid_len);
                spool.read_records = skipped;
                spool.bytes += valid_len - spool.read_offset;
            } else {
                spool.bytes += valid_len;
            }
            spool.items += records;
            spool.segments.push_back((
                seq,
                valid_len,
                records + if seq == cursor_seq { skipped } else { 0 },
            ));
        }
        Ok(spool)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.seg"))
    }

    fn push(&mut self, items: &[Vec<u8>]) -> io::Result<()> {
        let mut framed = Vec::new();
        for it in items {
            let rec = HEADER + it.len() as u64;
            let need_new = match &self.writer {
                None => true,
                Some((seq, _)) => {
                    let size = self
                        .segments
                        .back()
                        .filter(|s| s.0 == *seq)
                        .map_or(0, |s| s.1);
                    size + framed.len() as u64 + rec > self.segment_bytes
                        && size + framed.len() as u64 > 0
                }
            };
            if need_new {
                self.flush_frames(&mut framed)?;
                self.rotate()?;
            }
            framed.extend_from_slice(&(it.len() as u32).to_le_bytes());
            framed.extend_from_slice(&crc(it).to_le_bytes());
            framed.extend_from_slice(it);
            if let Some(last) = self.segments.back_mut() {
                last.2 += 1;
            }
            self.items += 1;
        }
        self.flush_frames(&mut framed)?;
        self.enforce_bound()
    }

    /// Writes pending frames to the current segment.
    fn flush_frames(&mut self, framed: &mut Vec<u8>) -> io::Result<()> {
        if framed.is_empty() {
            return Ok(());
        }
        let Some((_, f)) = self.writer.as_mut() else {
            return Err(io::Error::other("spool has no open segment"));
        };
        f.write_all(framed)?;
        if let Some(last) = self.segments.back_mut() {
            last.1 += framed.len() as u64;
        }
        self.bytes += framed.len() as u64;
        framed.clear();
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let seq = self.segments.back().map_or(0, |s| s.0 + 1);
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.segment_path(seq))?;
        self.writer = Some((seq, f));
        self.segments.push_back((seq, 0, 0));
        Ok(())
    }

    /// Drops the oldest segments while over the bound, counting their undelivered items.
    fn enforce_bound(&mut self) -> io::Result<()> {
        while self.bytes > self.max_bytes && self.segments.len() > 1 {
            let Some((seq, size, records)) = self.segments.pop_front() else {
                break;
            };
            let left = records.saturating_sub(self.read_records);
            self.dropped += left;
            self.items -= left;
            self.bytes -= size - self.read_offset;
            self.read_offset = 0;
            self.read_records = 0;
            self.peeked.clear();
            let _ = fs::remove_file(self.segment_path(seq));
            self.write_cursor()?;
        }
        Ok(())
    }

    fn peek(
        &mut self,
        max_items: usize,
        max_bytes: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> io::Result<()> {
        out.clear();
        self.peeked.clear();
        let mut size = 0usize;
        let mut offset = self.read_offset;
        'segments: for &(seq, seg_size, _) in self.segments.iter() {
            if offset >= seg_size {
                offset = 0;
                self.peeked.push(u64::MAX); // marks "next segment" for commit
                continue;
            }
            let mut f = File::open(self.segment_path(seq))?;
            f.seek(SeekFrom::Start(offset))?;
            let mut r = io::BufReader::new(f);
            while offset < seg_size {
                if out.len() >= max_items.max(1) {
                    break 'segments;
                }
                let Some(item) = read_record(&mut r)? else {
                    break;
                };
                if !out.is_empty() && size + item.len() > max_bytes {
                    break 'segments;
                }
                size += item.len();
                offset += HEADER + item.len() as u64;
                self.peeked.push(HEADER + item.len() as u64);
                out.push(item);
            }
            offset = 0;
            self.peeked.push(u64::MAX);
        }
        Ok(())
    }

    fn commit(&mut self, n: usize) -> io::Result<()> {
        let mut done = 0;
        let peeked = std::mem::take(&mut self.peeked);
        for size in peeked {
            if size == u64::MAX {
                // The front segment is exhausted: remove it unless it is being written.
                if self.segments.len() > 1 {
                    if let Some((seq, seg_size, _)) = self.segments.pop_front() {
                        self.bytes -= seg_size.saturating_sub(self.read_offset);
                        let _ = fs::remove_file(self.segment_path(seq));
                    }
                    self.read_offset = 0;
                    self.read_records = 0;
                }
                continue;
            }
            if done == n {
                break;
            }
            self.read_offset += size;
            self.read_records += 1;
            self.bytes -= size;
            self.items -= 1;
            done += 1;
        }
        self.write_cursor()
    }

    fn write_cursor(&self) -> io::Result<()> {
        let seq = self.segments.front().map_or(0, |s| s.0);
        let tmp = self.dir.join("cursor.tmp");
        fs::write(&tmp, format!("{seq} {}\n", self.read_offset))?;
        fs::rename(tmp, self.dir.join(CURSOR))
    }
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(dir.join(CURSOR)).ok()?;
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Valid length of a segment, records after `from`, records before `from`.
fn scan(path: &Path, from: u64) -> io::Result<(u64, u64, u64)> {
    let mut r = io::BufReader::new(File::open(path)?);
    let (mut pos, mut after, mut before) = (0u64, 0u64, 0u64);
    loop {
        match read_record(&mut r) {
            Ok(Some(item)) => {
                if pos < from {
                    before += 1;
                } else {
                    after += 1;
                }
                pos += HEADER + item.len() as u64;
            }
            // End, torn or corrupt: everything after this point is discarded.
            Ok(None) | Err(_) => return Ok((pos, after, before)),
        }
    }
}

fn read_record(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; HEADER as usize];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let want = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > 64 << 20 {
        return Ok(None);
    }
    let mut item = vec![0u8; len];
    match r.read_exact(&mut item) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok((crc(&item) == want).then_some(item))
}

fn crc(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
        range.map(|i| format!("item-{i:05}").into_bytes()).collect()
    }

    fn drain(b: &mut Buffer) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        let mut batch = Vec::new();
        loop {
            b.peek(7, 1 << 20, &mut batch).unwrap();
            if batch.is_empty() {
                return all;
            }
            let n = batch.len();
            all.append(&mut batch);
            b.commit(n).unwrap();
        }
    }

    #[test]
    fn memory_buffer_drops_oldest_and_counts() {
        let mut b = Buffer::Memory(MemoryBuffer::new(100));
        b.push(&items(0..20)).unwrap(); // 10 bytes each
        assert_eq!(b.len(), 10);
        assert_eq!(b.dropped(), 10);
        assert_eq!(drain(&mut b), items(10..20));
        assert!(b.is_empty());
    }

    #[test]
    fn spool_survives_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut b = Buffer::Disk(DiskSpool::open(dir.path(), 1 << 20).unwrap());
            b.push(&items(0..50)).unwrap();
            let mut batch = Vec::new();
            b.peek(10, 1 << 20, &mut batch).unwrap();
            b.commit(10).unwrap();
            assert_eq!(b.len(), 40);
        }
        let mut b = Buffer::Disk(DiskSpool::open(dir.path(), 1 << 20).unwrap());
        assert_eq!(b.len(), 40);
        b.push(&items(50..60)).unwrap();
        assert_eq!(drain(&mut b), items(10..60));
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn spool_rotates_and_bounds_by_dropping_oldest_segments() {
        let dir = tempfile::tempdir().unwrap();
        // Segments of 64 KiB, bound of 256 KiB: 18-byte records, ~14k of them fit.
        let mut b = Buffer::Disk(DiskSpool::open(dir.path(), 256 << 10).unwrap());
        let many: Vec<Vec<u8>> = (0..40_000u32)
            .map(|i| format!("item-{i:05}").into_bytes())
            .collect();
        b.push(&many).unwrap();
        assert!(b.bytes() <= 256 << 10, "{}", b.bytes());
        assert!(b.dropped() > 0);
        assert_eq!(b.len() + b.dropped(), 40_000);
        let rest = drain(&mut b);
        assert_eq!(rest.len() as u64 + b.dropped(), 40_000);
        // What is left is the newest, in order.
        assert_eq!(rest.last().unwrap(), &many[39_999]);
        assert!(rest.windows(2).all(|w| w[0] < w[1]));
        let segs = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(segs <= 3, "{segs} files left");
    }

    #[test]
    fn torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut b = Buffer::Disk(DiskSpool::open(dir.path(), 1 << 20).unwrap());
            b.push(&items(0..5)).unwrap();
        }
        let seg = dir.path().join(format!("{:020}.seg", 0));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[42, 0, 0, 0, 1, 2]).unwrap(); // a header cut short
        drop(f);
        let mut b = Buffer::Disk(DiskSpool::open(dir.path(), 1 << 20).unwrap());
        assert_eq!(b.len(), 5);
        b.push(&items(5..7)).unwrap();
        assert_eq!(drain(&mut b), items(0..7));
    }

    #[test]
    fn uncommitted_peek_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Buffer::Disk(DiskSpool::open(dir.path(), 1 << 20).unwrap());
        b.push(&items(0..3)).unwrap();
        let mut batch = Vec::new();
        b.peek(2, 1 << 20, &mut batch).unwrap();
        assert_eq!(batch, items(0..2));
        b.peek(2, 1 << 20, &mut batch).unwrap();
        assert_eq!(batch, items(0..2));
        b.commit(1).unwrap();
        b.peek(5, 1 << 20, &mut batch).unwrap();
        assert_eq!(batch, items(1..3));
    }
}
