//! A container's processes and the descriptors they hold (cAdvisor's process group): the pids
//! in `cgroup.procs`, a walk of each one's `/proc/<pid>/fd`, and the first one's open-files
//! limit. Nothing forks; no name or pid is kept.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::dir::Dir as DirStream;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::parse;
use crate::read::{Dir, Reader};
use crate::stats::ProcessStats;

/// Reads the process group, reusing its buffers.
#[derive(Debug)]
pub(crate) struct ProcessReader {
    proc_root: PathBuf,
    pids: Vec<u64>,
    path: PathBuf,
    /// The socket inodes met by the last read, sorted, when asked for (`collect_inodes`).
    inodes: Vec<u64>,
    collect_inodes: bool,
}

/// What one process's descriptor walk found.
pub(crate) enum Walk {
    Counted {
        fds: u64,
        sockets: u64,
    },
    /// It exited meanwhile: it counts for nothing.
    Gone,
    /// Its descriptors cannot be listed (no rights over it): the totals are unknown.
    Unreadable,
}

impl ProcessReader {
    pub fn new(proc_root: &Path) -> ProcessReader {
        ProcessReader {
            proc_root: proc_root.to_path_buf(),
            pids: Vec::new(),
            path: PathBuf::new(),
            inodes: Vec::new(),
            collect_inodes: false,
        }
    }

    /// Also keep the inode of every socket met (for the security signals).
    pub fn collect_inodes(&mut self, on: bool) {
        self.collect_inodes = on;
    }

    /// The pids the last read listed.
    pub fn pids(&self) -> &[u64] {
        &self.pids
    }

    /// The socket inodes the last read met, sorted and without repeats (a socket shared by
    /// processes counts once); empty unless `collect_inodes`.
    pub fn inodes(&self) -> &[u64] {
        &self.inodes
    }

    /// Fills `out` for the cgroup whose processes `procs_dir` lists.
    pub fn read(&mut self, r: &mut Reader, procs_dir: Dir<'_>, out: &mut ProcessStats) {
        *out = ProcessStats::default();
        self.inodes.clear();
        self.pids.clear();
        let Some(()) = r.parsed(procs_dir, "cgroup.procs", |t| {
            parse::u64_list(t, &mut self.pids)
        }) else {
            return;
        };
        out.count = Some(self.pids.len() as u64);
        let (mut fds, mut sockets, mut known) = (0u64, 0u64, true);
        // The first process whose limits could be read (one gone meanwhile is passed over).
        let mut limit_read = false;
        for i in 0..self.pids.len() {
            let pid = self.pids[i];
            match self.walk(pid) {
                Walk::Counted { fds: f, sockets: s } => {
                    fds += f;
                    sockets += s;
                }
                Walk::Gone => {}
                Walk::Unreadable => known = false,
            }
            if !limit_read {
                self.set_path(pid, None);
                let dir = std::mem::take(&mut self.path);
                // An exiting process's `limits` reads empty (its signal state is gone): passed
                // over like one already gone, not a parse error.
                let parsed = r
                    .read(Dir::from(dir.as_path()), "limits")
                    .filter(|t| !t.trim().is_empty())
                    .map(parse::max_open_files);
                match parsed {
                    Some(Ok(limit)) => {
                        out.max_open_files = limit;
                        limit_read = true;
                    }
                    Some(Err(reason)) => r.parse_error(reason),
                    None => {}
                }
                self.path = dir;
            }
        }
        // A process that exited between the listing and its files is not a vanished cgroup.
        r.forgive_missing();
        self.inodes.sort_unstable();
        self.inodes.dedup();
        if known {
            (out.fds, out.sockets) = (Some(fds), Some(sockets));
        }
    }

    fn set_path(&mut self, pid: u64, sub: Option<&str>) {
        self.path.clear();
        self.path.push(&self.proc_root);
        self.path.push(itoa::Buffer::new().format(pid));
        if let Some(sub) = sub {
            self.path.push(sub);
        }
    }

    /// Counts a process's descriptors, and those that are sockets.
    fn walk(&mut self, pid: u64) -> Walk {
        self.set_path(pid, Some("fd"));
        let inodes = self.collect_inodes.then_some(&mut self.inodes);
        walk_fds(&self.path, inodes)
    }
}

/// Counts the descriptors in a process's `fd` directory, and those that are sockets; the
/// sockets' inodes are appended to `inodes` when given.
pub(crate) fn walk_fds(fd_dir: &Path, mut inodes: Option<&mut Vec<u64>>) -> Walk {
    let mut dir = match DirStream::open(
        fd_dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ESRCH) => return Walk::Gone,
        Err(_) => return Walk::Unreadable,
    };
    // SAFETY: the descriptor stays open while `dir` lives, which outlasts `fd`'s uses.
    let fd = unsafe { BorrowedFd::borrow_raw(dir.as_raw_fd()) };
    let (mut fds, mut sockets) = (0, 0);
    for entry in dir.iter() {
        let Ok(entry) = entry else {
            // The process exited part way: what was counted is not its whole.
            return Walk::Gone;
        };
        let name = entry.file_name();
        if name.to_bytes().starts_with(b".") {
            continue;
        }
        fds += 1;
        if let Some(inode) = socket_inode(fd, name) {
            sockets += 1;
            if let Some(v) = inodes.as_deref_mut() {
                v.push(inode);
            }
        }
    }
    Walk::Counted { fds, sockets }
}

/// The inode of the socket the descriptor link `name` in the `fd` directory `dir` points at
/// (`socket:[inode]`; 0 if the number cannot be read), `None` for any other descriptor.
/// libc rather than nix: nix's `readlinkat` allocates a buffer for every call, and this runs
/// once per descriptor of every process walked.
fn socket_inode(dir: BorrowedFd<'_>, name: &CStr) -> Option<u64> {
    const PREFIX: &[u8] = b"socket:[";
    // `socket:[` and up to 20 digits and `]`.
    let mut buf = [0u8; 32];
    // SAFETY: `name` is NUL-terminated, `buf` is writable for its length, and readlinkat
    // writes at most that many bytes; the result is checked before use.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let link = &buf[..usize::try_from(n).ok()?.min(buf.len())];
    let digits = link.strip_prefix(PREFIX)?;
    let digits = digits.strip_suffix(b"]").unwrap_or(&[]);
    Some(
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    /// This test process, read as a container of one. Other tests of this binary run beside
    /// this one and open descriptors too, so only what this one holds is asserted; the exact
    /// counts are in the integration tests, with a process of their own.
    #[test]
    fn counts_this_process_descriptors_and_sockets() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(
            dir.path().join("cgroup.procs"),
            format!("{}\n", std::process::id()),
        )
        .expect("a pid list");
        let tcp = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a udp socket");
        let file = std::fs::File::open("/proc/self/status").expect("a file");
        let mut reader = ProcessReader::new(std::path::Path::new("/proc"));
        let mut r = Reader::new();
        let mut out = ProcessStats::default();
        reader.read(&mut r, Dir::from(dir.path()), &mut out);
        assert!(!r.has_errors(), "{r:?}");
        assert_eq!(out.count, Some(1));
        let (fds, sockets) = (out.fds.expect("fds"), out.sockets.expect("sockets"));
        assert!(sockets >= 2, "{sockets} sockets");
        assert!(fds > sockets, "{fds} descriptors, {sockets} sockets");
        assert!(out.max_open_files.is_some_and(|n| n > 0));
        drop((tcp, udp, file));
    }

    /// The limit is the first process's even when it is unlimited: a later one's is not taken.
    #[test]
    fn the_limit_is_the_first_process() {
        let root = tempfile::tempdir().expect("a temp dir");
        let row = |soft: &str| format!("Max open files  {soft}  4096  files\n");
        for (pid, soft) in [("7", "unlimited"), ("8", "1024")] {
            std::fs::create_dir_all(root.path().join(pid).join("fd")).expect("a fd dir");
            std::fs::write(root.path().join(pid).join("limits"), row(soft)).expect("limits");
        }
        std::fs::write(root.path().join("cgroup.procs"), "7\n8\n").expect("a pid list");
        let mut reader = ProcessReader::new(root.path());
        let mut r = Reader::new();
        let mut out = ProcessStats::default();
        reader.read(&mut r, Dir::from(root.path()), &mut out);
        assert_eq!(out.count, Some(2));
        assert_eq!(out.max_open_files, None, "{out:?}");
        std::fs::write(root.path().join("7").join("limits"), row("512")).expect("limits");
        reader.read(&mut r, Dir::from(root.path()), &mut out);
        assert_eq!(out.max_open_files, Some(512));
    }

    /// An exiting process's `limits` reads empty: passed over for the next one, no error.
    #[test]
    fn an_exiting_process_with_empty_limits_is_passed_over() {
        let root = tempfile::tempdir().expect("a temp dir");
        for pid in ["7", "8"] {
            std::fs::create_dir_all(root.path().join(pid).join("fd")).expect("a fd dir");
        }
        std::fs::write(root.path().join("7").join("limits"), "").expect("limits");
        std::fs::write(
            root.path().join("8").join("limits"),
            "Max open files  2048  4096  files\n",
        )
        .expect("limits");
        std::fs::write(root.path().join("cgroup.procs"), "7\n8\n").expect("a pid list");
        let mut reader = ProcessReader::new(root.path());
        let mut r = Reader::new();
        let mut out = ProcessStats::default();
        reader.read(&mut r, Dir::from(root.path()), &mut out);
        assert!(!r.has_errors(), "{r:?}");
        assert_eq!(out.max_open_files, Some(2048));
    }

    #[test]
    fn a_pid_that_is_gone_counts_for_nothing() {
        let dir = tempfile::tempdir().expect("a temp dir");
        // Above the kernel's pid_max (4,194,304 at most): no such process.
        std::fs::write(dir.path().join("cgroup.procs"), "4194305\n").expect("a pid list");
        let mut reader = ProcessReader::new(std::path::Path::new("/proc"));
        let mut r = Reader::new();
        let mut out = ProcessStats::default();
        reader.read(&mut r, Dir::from(dir.path()), &mut out);
        assert_eq!(out.count, Some(1));
        assert_eq!((out.fds, out.sockets), (Some(0), Some(0)));
        assert!(!r.saw_missing());
    }
}
