//! Where a sink's items wait for delivery: in memory, or in an on-disk spool that survives a
//! restart. Both are bounded in bytes; when full, the oldest items go first and are counted.
//! The spool's filesystem is a bound too: when it is full, the oldest segment goes.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::fallback::Spooled;

/// A FIFO of encoded items.
#[derive(Debug)]
pub enum Buffer {
    /// Held in memory; lost on restart.
    Memory(MemoryBuffer),
    /// Held in an on-disk spool that survives a restart, in memory while it cannot be used.
    Disk(Box<Spooled>),
}

impl Buffer {
    /// Appends items, dropping the oldest ones if the bound is exceeded.
    pub fn push(&mut self, items: &[Vec<u8>]) {
        match self {
            Buffer::Memory(b) => b.push(items),
            Buffer::Disk(d) => d.push(items),
        }
    }

    /// Up to `max_items` / `max_bytes` from the front (at least one item when not empty),
    /// without removing them.
    pub fn peek(&mut self, max_items: usize, max_bytes: usize, out: &mut Vec<Vec<u8>>) {
        match self {
            Buffer::Memory(b) => b.peek(max_items, max_bytes, out),
            Buffer::Disk(d) => d.peek(max_items, max_bytes, out),
        }
    }

    /// Removes the first `n` items (delivered, or given up on).
    pub fn commit(&mut self, n: usize) {
        match self {
            Buffer::Memory(b) => b.commit(n),
            Buffer::Disk(d) => d.commit(n),
        }
    }

    /// How many items wait.
    pub fn len(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.len(),
            Buffer::Disk(d) => d.len(),
        }
    }

    /// No item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the waiting items take (on disk, framing included, for the spool).
    pub fn bytes(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.bytes as u64,
            Buffer::Disk(d) => d.bytes(),
        }
    }

    /// A spool whose directory cannot be used, its items held in memory meanwhile.
    pub fn spool_in_memory(&self) -> bool {
        matches!(self, Buffer::Disk(d) if d.in_memory())
    }

    /// Items dropped to keep within the bound, since start.
    pub fn dropped(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.dropped,
            Buffer::Disk(d) => d.dropped(),
        }
    }
}

/// Items in memory, bounded by their total size.
#[derive(Debug)]
pub struct MemoryBuffer {
    items: VecDeque<Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
    pub(crate) dropped: u64,
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

    pub(crate) fn push(&mut self, items: &[Vec<u8>]) {
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

    pub(crate) fn peek(&self, max_items: usize, max_bytes: usize, out: &mut Vec<Vec<u8>>) {
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

    /// Empties the buffer, handing over its items oldest first.
    pub(crate) fn take_all(&mut self) -> Vec<Vec<u8>> {
        self.bytes = 0;
        self.items.drain(..).collect()
    }

    pub(crate) fn len(&self) -> u64 {
        self.items.len() as u64
    }

    pub(crate) fn commit(&mut self, n: usize) {
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
/// process died mid-write) is cut off on open; nothing before it is lost. A write that fails
/// part way (ENOSPC) is cut off at once. Records are read only up to each segment's recorded
/// size and only while their CRC matches.
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
    /// The sequence number of the next segment made.
    next_seq: u64,
    /// The directory's device and inode, to tell when it is removed.
    dir_id: (u64, u64),
    items: u64,
    bytes: u64,
    dropped: u64,
    /// Framed sizes of the items returned by the last `peek`, for `commit`.
    peeked: Vec<u64>,
}

const HEADER: u64 = 8;
const CURSOR: &str = "cursor";

impl DiskSpool {
    /// Opens (or creates) a spool in `dir`, bounded to `max_bytes` on disk. Fails when the
    /// directory cannot be written.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<DiskSpool> {
        use std::os::unix::fs::MetadataExt;
        fs::create_dir_all(dir)?;
        let m = fs::metadata(dir)?;
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
            segment_bytes: (max_bytes.min(fs_bytes(dir)) / 8).clamp(64 << 10, 16 << 20),
            segments: VecDeque::new(),
            read_offset: 0,
            read_records: 0,
            writer: None,
            next_seq: seqs.last().map_or(cursor_seq, |&l| l.max(cursor_seq) + 1),
            dir_id: (m.dev(), m.ino()),
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
        spool.write_cursor()?;
        Ok(spool)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.seg"))
    }

    /// Appends items, dropping the oldest when over the bound or out of room. On failure,
    /// says how many of `items` were written before it.
    pub(crate) fn push(&mut self, items: &[Vec<u8>]) -> Result<(), (usize, io::Error)> {
        self.check_dir().map_err(|e| (0, e))?;
        let mut rest = items;
        let fail = |rest: &[Vec<u8>], e| (items.len() - rest.len(), e);
        while !rest.is_empty() {
            match self.append(rest) {
                Ok(n) => rest = &rest[n..],
                // The filesystem is smaller than the bound: it is the bound now.
                Err(e) if is_full(&e) => match self.drop_oldest_for_room() {
                    Ok(true) => {}
                    Ok(false) => {
                        // Nothing older left to drop: these items cannot be kept.
                        self.dropped += rest.len() as u64;
                        break;
                    }
                    Err(e) => return Err(fail(rest, e)),
                },
                Err(e) => return Err(fail(rest, e)),
            }
        }
        self.enforce_bound().map_err(|e| (items.len(), e))
    }

    /// Items waiting.
    pub(crate) fn len(&self) -> u64 {
        self.items
    }

    /// Bytes on disk the waiting items take, framing included.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Items dropped to keep within the bound or the filesystem, and damaged ones.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Fails when the spool's directory is gone or another was made in its place: writes
    /// would go to unlinked files and reads would fail.
    fn check_dir(&self) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(&self.dir)?;
        if (m.dev(), m.ino()) != self.dir_id {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the spool directory was removed (another is in its place)",
            ));
        }
        Ok(())
    }

    /// Writes as many of `items` as fit in the current segment (at least one), rotating first
    /// when it is full. Counts change only once the bytes are written; a failed write is cut
    /// off the segment and the segment closed, so no half record is ever read as data.
    fn append(&mut self, items: &[Vec<u8>]) -> io::Result<usize> {
        let size = match (&self.writer, self.segments.back()) {
            (Some((seq, _)), Some(last)) if last.0 == *seq => last.1,
            _ => u64::MAX,
        };
        let first = HEADER + items[0].len() as u64;
        if size == u64::MAX || (size > 0 && size + first > self.segment_bytes) {
            self.rotate()?;
        }
        let size = self.segments.back().map_or(0, |s| s.1);
        let mut framed = Vec::new();
        let mut n = 0;
        for it in items {
            let rec = HEADER + it.len() as u64;
            if n > 0 && size + framed.len() as u64 + rec > self.segment_bytes {
                break;
            }
            framed.extend_from_slice(&(it.len() as u32).to_le_bytes());
            framed.extend_from_slice(&crc(it).to_le_bytes());
            framed.extend_from_slice(it);
            n += 1;
        }
        let Some((_, f)) = self.writer.as_mut() else {
            return Err(io::Error::other("spool has no open segment"));
        };
        if let Err(e) = f.write_all(&framed) {
            // Best effort: were the cut to fail too, the segment's recorded size still ends
            // reads before the torn bytes, and an open after a restart cuts them by CRC.
            let _ = f.set_len(size);
            self.writer = None;
            return Err(e);
        }
        if let Some(last) = self.segments.back_mut() {
            last.1 += framed.len() as u64;
            last.2 += n as u64;
        }
        self.items += n as u64;
        self.bytes += framed.len() as u64;
        Ok(n)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let seq = self.next_seq;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.segment_path(seq))?;
        self.writer = Some((seq, f));
        self.next_seq = seq + 1;
        self.segments.push_back((seq, 0, 0));
        Ok(())
    }

    /// On a full filesystem: drops the oldest segment (starting a new one first when only
    /// the one being written holds items). False when nothing is left to drop.
    fn drop_oldest_for_room(&mut self) -> io::Result<bool> {
        if self.segments.len() <= 1 {
            if self.segments.back().is_none_or(|s| s.1 == 0) {
                return Ok(false);
            }
            self.rotate()?;
        }
        self.drop_front();
        self.write_cursor()?;
        Ok(true)
    }

    /// Removes the oldest segment, counting its undelivered items as dropped.
    fn drop_front(&mut self) {
        let Some((seq, size, records)) = self.segments.pop_front() else {
            return;
        };
        let left = records.saturating_sub(self.read_records);
        self.dropped += left;
        self.items -= left;
        self.bytes -= size.saturating_sub(self.read_offset);
        self.read_offset = 0;
        self.read_records = 0;
        self.peeked.clear();
        if self.writer.as_ref().is_some_and(|w| w.0 == seq) {
            self.writer = None;
        }
        let _ = fs::remove_file(self.segment_path(seq));
    }

    /// Drops the oldest segments while over the bound, counting their undelivered items.
    fn enforce_bound(&mut self) -> io::Result<()> {
        let mut dropped_any = false;
        while self.bytes > self.max_bytes && self.segments.len() > 1 {
            self.drop_front();
            dropped_any = true;
        }
        if dropped_any {
            self.write_cursor()?;
        }
        Ok(())
    }

    pub(crate) fn peek(
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
                    // Damaged from here on (not by this process: its failed writes are
                    // cut). The rest of the segment counts as dropped once it is passed,
                    // and appends go to a new segment so it can be.
                    if self.writer.as_ref().is_some_and(|w| w.0 == seq) {
                        self.writer = None;
                    }
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

    /// Removes the first `n` items peeked. On failure (the cursor could not be written) they
    /// are still removed here; only a restart would see them again.
    pub(crate) fn commit(&mut self, n: usize) -> io::Result<()> {
        let mut done = 0;
        let peeked = std::mem::take(&mut self.peeked);
        for size in peeked {
            if size == u64::MAX {
                // The front segment is exhausted: remove it unless it is being written.
                // Records not read by now were damaged: `drop_front` counts them.
                let front = self.segments.front().map(|s| s.0);
                let writing = self.writer.as_ref().is_some_and(|w| Some(w.0) == front);
                if self.segments.len() > 1 || !writing {
                    self.drop_front();
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
        let seq = self.segments.front().map_or(self.next_seq, |s| s.0);
        let tmp = self.dir.join("cursor.tmp");
        match fs::write(&tmp, format!("{seq} {}\n", self.read_offset)) {
            // A full filesystem keeps the last cursor: after a restart some delivered items
            // are sent again, which at-least-once delivery allows.
            Err(e) if is_full(&e) => {
                let _ = fs::remove_file(&tmp);
                Ok(())
            }
            Err(e) => Err(e),
            Ok(()) => fs::rename(tmp, self.dir.join(CURSOR)),
        }
    }
}

/// The size of the filesystem holding `dir`: segments are an eighth of it at most, so one
/// that fills drops an eighth of the spool, not all of it.
fn fs_bytes(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir)
        .map_or(u64::MAX, |v| v.blocks().saturating_mul(v.fragment_size()))
}

/// No room left on the filesystem (or in the quota).
fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
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

    fn spool(dir: &Path, max_bytes: u64) -> Buffer {
        Buffer::Disk(Box::new(
            Spooled::open("test", dir, max_bytes, 64 << 20).unwrap(),
        ))
    }

    fn drain(b: &mut Buffer) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        let mut batch = Vec::new();
        loop {
            b.peek(7, 1 << 20, &mut batch);
            if batch.is_empty() {
                return all;
            }
            let n = batch.len();
            all.append(&mut batch);
            b.commit(n);
        }
    }

    #[test]
    fn memory_buffer_drops_oldest_and_counts() {
        let mut b = Buffer::Memory(MemoryBuffer::new(100));
        b.push(&items(0..20)); // 10 bytes each
        assert_eq!(b.len(), 10);
        assert_eq!(b.dropped(), 10);
        assert_eq!(drain(&mut b), items(10..20));
        assert!(b.is_empty());
    }

    #[test]
    fn spool_survives_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut b = spool(dir.path(), 1 << 20);
            b.push(&items(0..50));
            let mut batch = Vec::new();
            b.peek(10, 1 << 20, &mut batch);
            b.commit(10);
            assert_eq!(b.len(), 40);
        }
        let mut b = spool(dir.path(), 1 << 20);
        assert_eq!(b.len(), 40);
        b.push(&items(50..60));
        assert_eq!(drain(&mut b), items(10..60));
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn spool_rotates_and_bounds_by_dropping_oldest_segments() {
        let dir = tempfile::tempdir().unwrap();
        // Segments of 64 KiB, bound of 256 KiB: 18-byte records, ~14k of them fit.
        let mut b = spool(dir.path(), 256 << 10);
        let many: Vec<Vec<u8>> = (0..40_000u32)
            .map(|i| format!("item-{i:05}").into_bytes())
            .collect();
        b.push(&many);
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
            let mut b = spool(dir.path(), 1 << 20);
            b.push(&items(0..5));
        }
        let seg = dir.path().join(format!("{:020}.seg", 0));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[42, 0, 0, 0, 1, 2]).unwrap(); // a header cut short
        drop(f);
        let mut b = spool(dir.path(), 1 << 20);
        assert_eq!(b.len(), 5);
        b.push(&items(5..7));
        assert_eq!(drain(&mut b), items(0..7));
    }

    #[test]
    fn a_damaged_record_drops_the_rest_of_its_segment_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = spool(dir.path(), 1 << 20);
        b.push(&items(0..10));
        // Flip a byte inside the fifth record (18 bytes each, framing included).
        let seg = dir.path().join(format!("{:020}.seg", 0));
        let mut bytes = fs::read(&seg).unwrap();
        bytes[4 * 18 + 10] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        // Appended behind the damage before it is met: lost with it.
        b.push(&items(10..12));
        assert_eq!(drain(&mut b), items(0..4));
        assert_eq!(b.dropped(), 8, "the damaged record and those behind it");
        assert!(b.is_empty());
        // Appends go to a new segment, read in full.
        b.push(&items(12..15));
        assert_eq!(drain(&mut b), items(12..15));
        assert_eq!(b.dropped(), 8);
    }

    #[test]
    fn uncommitted_peek_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = spool(dir.path(), 1 << 20);
        b.push(&items(0..3));
        let mut batch = Vec::new();
        b.peek(2, 1 << 20, &mut batch);
        assert_eq!(batch, items(0..2));
        b.peek(2, 1 << 20, &mut batch);
        assert_eq!(batch, items(0..2));
        b.commit(1);
        b.peek(5, 1 << 20, &mut batch);
        assert_eq!(batch, items(1..3));
    }
}
