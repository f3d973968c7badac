//! Reading cgroup files into one reused buffer, turning outcomes into values or recorded errors.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{is_vanished, Error};
use crate::parse;

/// A directory to read files from: its path, and a descriptor open on it when one is held.
/// With the descriptor the kernel resolves one name (`openat`) instead of the whole path,
/// which is most of the cost of opening a cgroup file.
#[derive(Debug, Clone, Copy)]
pub struct Dir<'a> {
    pub path: &'a Path,
    pub fd: Option<BorrowedFd<'a>>,
}

impl<'a> From<&'a Path> for Dir<'a> {
    fn from(path: &'a Path) -> Self {
        Dir { path, fd: None }
    }
}

impl<'a> From<&'a PathBuf> for Dir<'a> {
    fn from(path: &'a PathBuf) -> Self {
        Dir {
            path: path.as_path(),
            fd: None,
        }
    }
}

impl<'a> From<&'a CgDir> for Dir<'a> {
    fn from(d: &'a CgDir) -> Self {
        Dir {
            path: &d.path,
            fd: d.fd(),
        }
    }
}

/// How many descriptors may be held open across sweeps (cgroup directories, held files,
/// process handles), and how many are. Cloning shares it: the collectors given one clone
/// share its limit. Each held descriptor carries a grant that gives its place back when
/// the descriptor closes, so a dropped collector leaves its budget as it found it.
#[derive(Debug, Clone)]
pub struct FdBudget(Arc<BudgetCount>);

#[derive(Debug)]
struct BudgetCount {
    held: AtomicUsize,
    limit: AtomicUsize,
}

impl FdBudget {
    /// A budget of at most `limit` descriptors.
    pub fn new(limit: usize) -> FdBudget {
        FdBudget(Arc::new(BudgetCount {
            held: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
        }))
    }

    /// The budget shared by every collector of the process not given one of its own: the
    /// soft `RLIMIT_NOFILE` less an eighth (at least 1,024), so the rest of the program
    /// always has room.
    pub fn process_default() -> FdBudget {
        static DEFAULT: OnceLock<FdBudget> = OnceLock::new();
        DEFAULT
            .get_or_init(|| FdBudget::new(budget_from_rlimit()))
            .clone()
    }

    /// How many are held now.
    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::Relaxed)
    }

    /// The most that may be held.
    pub fn limit(&self) -> usize {
        self.0.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit. Descriptors held beyond a lowered limit stay until their
    /// containers let them go; no new ones are taken meanwhile.
    pub fn set_limit(&self, limit: usize) {
        self.0.limit.store(limit, Ordering::Relaxed);
    }

    /// Room for one more descriptor, if there is any.
    fn take(&self) -> Option<Grant> {
        if self.0.held.fetch_add(1, Ordering::Relaxed) >= self.limit() {
            self.0.held.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Grant(self.0.clone()))
    }
}

/// One descriptor's place in a budget, given back on drop.
#[derive(Debug)]
struct Grant(Arc<BudgetCount>);

impl Drop for Grant {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A cgroup directory followed across sweeps. It holds a descriptor on the directory while
/// its collector's budget ([`FdBudget`]) allows. A directory descriptor costs the kernel a
/// `struct file`; a held file (see `FileCache`) also a page for its seq_file buffer.
#[derive(Debug)]
pub struct CgDir {
    pub path: PathBuf,
    fd: Option<(OwnedFd, Grant)>,
}

impl CgDir {
    pub fn new(path: PathBuf) -> Self {
        CgDir { path, fd: None }
    }

    pub fn is_held(&self) -> bool {
        self.fd.is_some()
    }

    /// Opens the descriptor if none is held and `budget` has room. Failure is quiet: reads
    /// fall back to the full path.
    pub fn hold(&mut self, budget: &FdBudget) {
        if self.fd.is_some() {
            return;
        }
        let Some(grant) = budget.take() else {
            return;
        };
        // Not O_PATH: the netlink cgroupstats query resolves the same descriptor, and the
        // kernel's fd lookup there ignores O_PATH ones.
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.path)
        {
            self.fd = Some((OwnedFd::from(f), grant));
        }
    }

    /// Closes the descriptor (it may point at a removed directory of the same name).
    pub fn release(&mut self) {
        self.fd = None;
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|(f, _)| f.as_fd())
    }
}

fn budget_from_rlimit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscall writing into a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    let soft = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
    soft.saturating_sub((soft / 8).max(1024))
}

/// A file held open within the descriptor budget and read with `pread` at offset 0, for a
/// file read on every sweep whose open is dear (`/proc/<pid>/net/dev`: the lookup goes through
/// the process's namespace). Like any held seq_file it keeps a page of kernel memory.
#[derive(Debug)]
pub struct HeldFd {
    file: File,
    _grant: Grant,
}

impl HeldFd {
    /// Opens `name` under `dir` and holds it, if `budget` has room.
    pub fn open_at(
        dir: BorrowedFd<'_>,
        name: &std::ffi::CStr,
        budget: &FdBudget,
    ) -> Option<HeldFd> {
        let grant = budget.take()?;
        open_ro_at(dir, name).ok().map(|file| HeldFd {
            file,
            _grant: grant,
        })
    }
}

/// `openat(dir, name, O_RDONLY | O_CLOEXEC)`.
fn open_ro_at(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    // SAFETY: `name` is NUL-terminated and outlives the call; the result is checked.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// A cgroup file held open and read with `pread` at offset 0: no path lookup, no open, no
/// close. Once read, a held cgroup file keeps a page-sized seq_file buffer, charged to the
/// reader's memory cgroup (`benches/kmem/held-fds.py`: 10,000 held files = 43 MB of slab).
#[derive(Debug)]
struct HeldFile {
    path: PathBuf,
    file: File,
    /// Read in the current pass over the container; files left unread are let go.
    used: bool,
    _grant: Grant,
}

/// The files of one container held open between sweeps, in the order they are read. Hand it to
/// the `Reader` for that container's reads (`Reader::swap_files`); empty unless the reader's
/// `hold_files` is on.
#[derive(Debug, Default)]
pub struct FileCache {
    files: Vec<HeldFile>,
    next: usize,
}

impl FileCache {
    pub fn clear(&mut self) {
        self.files.clear();
        self.next = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The held file for `path`: reads come in the same order every sweep, so the next one in
    /// line is nearly always it.
    fn find(&mut self, path: &Path) -> Option<usize> {
        let n = self.files.len();
        let at = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| self.files[i].path == path)?;
        self.next = at + 1;
        self.files[at].used = true;
        Some(at)
    }

    /// Lets go of the files not read since the last call (a file the readers stopped
    /// reading would otherwise keep its descriptor and kernel page for good).
    fn keep_used(&mut self) {
        self.files.retain(|f| f.used);
        for f in &mut self.files {
            f.used = false;
        }
    }
}

/// A reused path and content buffer, plus the errors met while reading one container.
#[derive(Debug, Default)]
pub struct Reader {
    path: PathBuf,
    name: Vec<u8>,
    buf: String,
    /// Errors met since the last `take_errors`.
    errors: Vec<Error>,
    /// Set when a file was absent: the cgroup may have vanished (the caller checks).
    saw_missing: bool,
    /// Set when a held directory descriptor no longer found a file its path still has: the
    /// directory was removed and made again under the same name. The caller releases it.
    stale_dir: bool,
    /// Keep the cgroup files read from now on open in `files` (within `budget`).
    hold_files: bool,
    files: FileCache,
    /// Where held files take their place; none held without one.
    budget: Option<FdBudget>,
}

impl Reader {
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader that may hold files open within `budget` (see `set_hold_files`).
    pub fn with_budget(budget: FdBudget) -> Self {
        Reader {
            budget: Some(budget),
            ..Self::default()
        }
    }

    /// The budget held descriptors take their place in, if any.
    pub fn budget(&self) -> Option<&FdBudget> {
        self.budget.as_ref()
    }

    /// Reads `dir/file`. `None` when it does not exist (an older kernel or a vanished cgroup),
    /// or when reading failed (the error is recorded).
    pub fn read<'d>(&mut self, dir: impl Into<Dir<'d>>, file: &str) -> Option<&str> {
        self.read_in(dir.into(), file, true)
    }

    /// As `read`; `fallback` says whether a file gone through a held descriptor is looked
    /// up by path (right for cgroup directories, wrong for `/proc/<pid>`, whose pid may have
    /// passed to another process).
    pub fn read_in(&mut self, dir: Dir<'_>, file: &str, fallback: bool) -> Option<&str> {
        self.path.clear();
        self.path.push(dir.path);
        self.path.push(file);
        self.buf.clear();
        // A cgroup control file is one record, which the kernel hands over whole when it fits:
        // a short read is the end, and the read that would return 0 is saved. Not so for the
        // pid lists (a record per pid) and files elsewhere (mountinfo: a record per mount).
        let pid_list = matches!(file, "cgroup.procs" | "tasks" | "cgroup.threads");
        let one_record = fallback && dir.fd.is_some() && !pid_list;
        if fallback && !self.files.is_empty() {
            if let Some(i) = self.files.find(&self.path) {
                // Only cgroup control files are ever held (never pid lists): one record.
                match pread_into(&self.files.files[i].file, &mut self.buf, true) {
                    Ok(()) => return Some(self.buf.as_str()),
                    // Removed (ENODEV), or a bad read: drop it and read afresh below.
                    Err(_) => {
                        self.files.files.remove(i);
                        self.files.next = i;
                        self.buf.clear();
                    }
                }
            }
        }
        let mut opened = match dir.fd {
            Some(fd) => self.open_at(fd, file),
            None => File::open(&self.path),
        };
        if fallback && dir.fd.is_some() && opened.as_ref().is_err_and(is_vanished) {
            // Gone through the descriptor: the cgroup went, or went and came back.
            if let Ok(f) = File::open(&self.path) {
                self.stale_dir = true;
                opened = Ok(f);
            }
        }
        // Only files of held cgroup directories: never /proc/<tid> files and the like, and
        // never pid lists (v1 keeps serving an open file the list it built on its first read).
        let hold = fallback && self.hold_files && dir.fd.is_some() && !self.stale_dir && !pid_list;
        let grant = if hold {
            self.budget.as_ref().and_then(FdBudget::take)
        } else {
            None
        };
        let res = opened.and_then(|f| {
            if let Some(grant) = grant {
                let r = pread_into(&f, &mut self.buf, one_record);
                let at = self.files.next.min(self.files.files.len());
                self.files.files.insert(
                    at,
                    HeldFile {
                        path: self.path.clone(),
                        file: f,
                        used: true,
                        _grant: grant,
                    },
                );
                self.files.next = at + 1;
                r
            } else {
                read_into(f, &mut self.buf, one_record)
            }
        });
        match res {
            Ok(_) => Some(self.buf.as_str()),
            Err(e) if is_vanished(&e) => {
                self.saw_missing = true;
                None
            }
            // Offered but switched off (PSI files with psi=0 on the kernel command line):
            // absent, like a file an older kernel lacks.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => None,
            Err(e) => {
                self.errors.push(Error::read(&self.path, e));
                None
            }
        }
    }

    /// Reads a held file (`dir/name` names it in errors). `None` when it could not be read:
    /// the caller lets it go and opens the file afresh.
    pub fn read_held(&mut self, f: &HeldFd, dir: &Path, name: &str) -> Option<&str> {
        self.path.clear();
        self.path.push(dir);
        self.path.push(name);
        match pread_into(&f.file, &mut self.buf, false) {
            Ok(()) => Some(self.buf.as_str()),
            Err(_) => None,
        }
    }

    /// Closes the held files in hand (their directory was made anew).
    pub fn drop_files(&mut self) {
        self.files.clear();
    }

    /// Exchanges the reader's held files with a container's: before its reads and after.
    /// Handing them back with `evict_unread` lets go of those not read in between.
    pub fn swap_files(&mut self, files: &mut FileCache, evict_unread: bool) {
        if evict_unread && !self.files.is_empty() {
            self.files.keep_used();
        }
        std::mem::swap(&mut self.files, files);
        self.files.next = 0;
    }

    fn open_at(&mut self, dir: BorrowedFd<'_>, file: &str) -> io::Result<File> {
        self.name.clear();
        self.name.extend_from_slice(file.as_bytes());
        self.name.push(0);
        let name = std::ffi::CStr::from_bytes_with_nul(&self.name)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        open_ro_at(dir, name)
    }

    /// The text of the last file read.
    pub fn last_text(&self) -> &str {
        &self.buf
    }

    /// The path of the last file read, for error messages.
    pub fn last_path(&self) -> &Path {
        &self.path
    }

    /// Records a parse failure of the last file read.
    pub fn parse_error(&mut self, reason: String) {
        let e = Error::parse(&self.path, reason);
        self.errors.push(e);
    }

    /// Reads and parses with `f`; a parse failure is recorded and gives `None`.
    pub fn parsed<'d, T>(
        &mut self,
        dir: impl Into<Dir<'d>>,
        file: &str,
        f: impl FnOnce(&str) -> Result<T, parse::Reason>,
    ) -> Option<T> {
        let text = self.read(dir, file)?;
        match f(text) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.parse_error(reason);
                None
            }
        }
    }

    pub fn u64<'d>(&mut self, dir: impl Into<Dir<'d>>, file: &str) -> Option<u64> {
        self.parsed(dir, file, parse::single_u64)
    }

    /// A limit file: `Some(None)` means "unlimited", `None` that it could not be read.
    pub fn limit<'d>(&mut self, dir: impl Into<Dir<'d>>, file: &str) -> Option<Option<u64>> {
        self.parsed(dir, file, parse::limit)
    }

    /// A one-line string into `out`, reusing its buffer; `None` when it could not be read.
    pub fn string_into<'d>(
        &mut self,
        dir: impl Into<Dir<'d>>,
        file: &str,
        out: &mut Option<String>,
    ) {
        match self.read(dir, file) {
            Some(text) => {
                let text = text.trim();
                match out {
                    Some(s) => {
                        s.clear();
                        s.push_str(text);
                    }
                    None => *out = Some(text.to_string()),
                }
            }
            None => *out = None,
        }
    }

    /// Flat keyed file: `f` sees each pair; a bad line is recorded, the good ones still count.
    pub fn flat_keyed<'d>(
        &mut self,
        dir: impl Into<Dir<'d>>,
        file: &str,
        f: impl FnMut(&str, u64),
    ) -> bool {
        let Some(text) = self.read(dir, file) else {
            return false;
        };
        if let Err(reason) = parse::flat_keyed(text, f) {
            self.parse_error(reason);
        }
        true
    }

    /// Takes the recorded errors out, leaving the reader ready for the next container.
    pub fn take_errors(&mut self, into: &mut Vec<Error>) {
        into.append(&mut self.errors);
        self.saw_missing = false;
        self.stale_dir = false;
    }

    /// Forgets what was met reading a container that turned out to be gone.
    pub fn discard(&mut self) {
        self.errors.clear();
        self.saw_missing = false;
        self.stale_dir = false;
    }

    /// Records an error met outside a read (a file that could be read but not used).
    pub fn record(&mut self, e: Error) {
        self.errors.push(e);
    }

    /// Whether an error was recorded since the last `take_errors`.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Whether a file was absent since the last `take_errors`: the cgroup may have vanished.
    pub fn saw_missing(&self) -> bool {
        self.saw_missing
    }

    /// An absent file that says nothing of the cgroup (a process or thread that exited).
    pub fn forgive_missing(&mut self) {
        self.saw_missing = false;
    }

    /// Whether a held directory descriptor met a directory removed and made again under the
    /// same name since the last `take_errors`: release the container's descriptors.
    pub fn stale_dir(&self) -> bool {
        self.stale_dir
    }

    /// Keep the cgroup files read from now on open (within the budget), or not.
    pub fn set_hold_files(&mut self, hold: bool) {
        self.hold_files = hold;
    }
}

/// Reads a whole file into the reused buffer with plain `read` calls. `read_to_string` would
/// first `statx` and `lseek` to size its buffer: two wasted syscalls per cgroup file, whose
/// size the kernel reports as 4096 anyway. `one_record`: a short read is the end.
fn read_into(mut f: File, buf: &mut String, one_record: bool) -> io::Result<()> {
    fill(buf, one_record, |chunk, _| f.read(chunk))
}

/// Reads a held file from its start with `pread`, into the reused buffer.
fn pread_into(f: &File, buf: &mut String, one_record: bool) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    fill(buf, one_record, |chunk, at| f.read_at(chunk, at))
}

/// The read loop of both: `read(chunk, offset)` until it returns 0 (or, with `one_record`,
/// less than a whole chunk).
fn fill(
    buf: &mut String,
    one_record: bool,
    mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    let mut bytes = std::mem::take(buf).into_bytes();
    bytes.clear();
    let mut chunk = [0u8; 4096];
    let res = loop {
        match read(&mut chunk, bytes.len() as u64) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                bytes.extend_from_slice(&chunk[..n]);
                if one_record && n < chunk.len() {
                    break Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    finish_utf8(bytes, buf, res)
}

/// Puts the bytes read back into the buffer as text; not UTF-8 is an error.
fn finish_utf8(bytes: Vec<u8>, buf: &mut String, res: io::Result<()>) -> io::Result<()> {
    match String::from_utf8(bytes) {
        Ok(s) => {
            *buf = s;
            res
        }
        Err(e) => {
            let mut b = e.into_bytes();
            b.clear();
            // Keep the allocation for the next file.
            *buf = String::from_utf8(b).unwrap_or_default();
            res.and(Err(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8")))
        }
    }
}
