//! Looking at one process in `/proc` and judging it: what the exec watch does at the moment
//! of an exec, and what a sweep does for a process new in `cgroup.procs`.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::finding::{cmdline_text, Finding, ProcessRef, CMDLINE_MAX};
use super::judge::{is_shell, judge_process, Conn, Fd, FindingKind, Process, Rules};
use super::sockets::{self, ListeningPorts, SocketRow};
use crate::fs::{overlay, statfs};
use crate::hierarchy::Setup;

/// A process as read from `/proc/<pid>`.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Who the process is: pid, parent, user, name, executable and command line.
    pub process: ProcessRef,
    /// The command line as read (NUL-separated), at most [`CMDLINE_MAX`] bytes.
    pub cmdline_raw: Vec<u8>,
    /// Descriptors 0 to 2; read only when asked for (`Fd::Unknown` otherwise).
    pub stdio: [Fd; 3],
    /// Whether `process.ppid` and `process.uid` were read (from `status`).
    pub ids_read: bool,
}

/// What [`read_facts`] reads beyond the name, executable and command line.
#[derive(Clone, Copy)]
pub struct Want<'a> {
    /// `status`, for the parent and the user.
    pub ids: bool,
    /// Whether descriptors 0 to 2 are wanted, given the name and the executable.
    pub stdio: &'a dyn Fn(&str, &str) -> bool,
}

#[cfg(test)]
impl Want<'_> {
    /// Everything.
    pub const ALL: Want<'static> = Want {
        ids: true,
        stdio: &|_, _| true,
    };
}

/// Reads a process's facts; `None` when it is gone (its name cannot be read, at first or at
/// the second look: a process reaped between reads would otherwise be judged with no name,
/// no executable and no command line, and a policy would find any such process unexpected).
/// A zombie still has a name; its executable and command line read as empty. What else is
/// read, `want` says: every exec on a busy host comes here, and each file is a lookup in a
/// `/proc` directory the kernel makes afresh for each new process.
///
/// The name is read again after the executable and the command line: when it changed, the
/// process exec'd (or renamed itself) in between, and the facts, which would mix two
/// programs (`sh` running `/tmp/sleep`), are read again, up to `READS` times.
pub fn read_facts(proc_root: &Path, pid: u32, want: Want<'_>) -> Option<Facts> {
    // Every file through one held directory: a path lookup of `/proc/<pid>` each would
    // cost as much as the read.
    let dir = ProcDir::open(&proc_root.join(itoa::Buffer::new().format(pid)))?;
    let (ppid, uid) = if want.ids {
        status_ids(&dir.read_string("status")?)
    } else {
        (0, 0)
    };
    let read_comm = || {
        dir.read_string("comm")
            .map(|c| c.trim_end_matches('\n').to_owned())
    };
    let mut comm = read_comm()?;
    let mut exe;
    let mut cmdline_raw = Vec::new();
    let mut reads = 0;
    loop {
        reads += 1;
        exe = dir.link("exe").unwrap_or_default();
        cmdline_raw.clear();
        if let Some(f) = dir.file("cmdline") {
            // Bounded: a process may have megabytes of arguments.
            let _ = f.take(CMDLINE_MAX as u64).read_to_end(&mut cmdline_raw);
        }
        let now = read_comm()?;
        let settled = now == comm;
        comm = now;
        if settled || reads >= READS {
            break;
        }
    }
    let stdio = if (want.stdio)(&comm, &exe) {
        ["fd/0", "fd/1", "fd/2"].map(|n| dir.link(n).map_or(Fd::Unknown, |t| Fd::from_link(&t)))
    } else {
        [Fd::Unknown; 3]
    };
    Some(Facts {
        process: ProcessRef {
            pid,
            ppid,
            uid,
            comm,
            exe,
            cmdline: cmdline_text(&cmdline_raw),
        },
        cmdline_raw,
        stdio,
        ids_read: want.ids,
    })
}

/// Reads the parent and user of a process whose facts were read without them (when a
/// finding needs them); left 0 when it is gone.
pub fn read_ids(proc_root: &Path, p: &mut ProcessRef) {
    let path = proc_root
        .join(itoa::Buffer::new().format(p.pid))
        .join("status");
    if let Ok(status) = std::fs::read_to_string(path) {
        (p.ppid, p.uid) = status_ids(&status);
    }
}

/// Reads of a process's facts at most, while its name keeps changing under them.
const READS: usize = 3;

/// A process's `/proc/<pid>` held open; its files are opened relative to it.
struct ProcDir(std::os::fd::OwnedFd);

impl ProcDir {
    fn open(path: &Path) -> Option<ProcDir> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)
            .ok()
            .map(|f| ProcDir(f.into()))
    }

    fn file(&self, name: &str) -> Option<File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let fd = nix::fcntl::openat(
            Some(self.0.as_raw_fd()),
            name,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        // SAFETY: `openat` just returned this descriptor, owned by nothing else.
        Some(unsafe { File::from_raw_fd(fd) })
    }

    fn read_string(&self, name: &str) -> Option<String> {
        let mut s = String::new();
        self.file(name)?.read_to_string(&mut s).ok()?;
        Some(s)
    }

    fn link(&self, name: &str) -> Option<String> {
        use std::os::fd::AsRawFd;
        nix::fcntl::readlinkat(Some(self.0.as_raw_fd()), name)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }
}

/// `PPid` and the real `Uid` from `/proc/<pid>/status` (0 where absent).
fn status_ids(status: &str) -> (u32, u32) {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("PPid:"), field("Uid:"))
}

/// The cgroup path a process is in, from `/proc/<pid>/cgroup`, as the collector names
/// containers: the cgroup2 line (`0::`) on a unified host, else the memory controller's
/// (any v1 controller on hybrid and legacy hosts gives the same path for a container).
pub fn cgroup_path(text: &str, setup: Setup) -> Option<&str> {
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let has = |name: &str| controllers.split(',').any(|c| c == name);
        if controllers.is_empty() {
            v2 = Some(path);
        } else if has("memory") || (v1.is_none() && (has("pids") || has("cpu"))) {
            v1 = Some(path);
        }
    }
    match setup {
        Setup::Unified => v2,
        Setup::Legacy | Setup::Hybrid => v1.or(v2),
    }
}

/// Judges processes against the rules, reading what the rules need beyond the facts.
#[derive(Debug, Clone)]
pub struct Examiner {
    proc_root: PathBuf,
    rootfs: PathBuf,
    rules: Arc<Rules>,
    /// Read every process's parent and user, not only those of processes found doing
    /// something (a policy judges them all, later, and names them in its findings).
    ids_always: bool,
    /// The upper directory of each root filesystem met (`None`: not an overlay), by its
    /// device, from the mount table of a process rooted there, for `UPPER_TTL`: a
    /// container's processes share one root (each overlay mount has a device of its own),
    /// and reading a mount table per exec would cost more than the rest of the look.
    uppers: RefCell<HashMap<u64, (Instant, Option<overlay::UpperDir>)>>,
}

/// How long a cgroup's upper directory is taken as known.
const UPPER_TTL: Duration = Duration::from_secs(60);
/// Roots whose upper directory is remembered, at most (beyond, the stale ones go).
const UPPERS_MAX: usize = 4096;

impl Examiner {
    /// Reads processes under `proc_root` and executables under `rootfs` (the host's root as
    /// mounted for the exporter), judged by `rules`; `ids_always` reads every process's parent
    /// and user (a policy needs them), not only those of processes with a finding.
    pub fn new(proc_root: &Path, rootfs: &Path, rules: Arc<Rules>, ids_always: bool) -> Examiner {
        Examiner {
            proc_root: proc_root.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            rules,
            ids_always,
            uppers: RefCell::default(),
        }
    }

    /// Reads what the rules need of a process: its descriptors only when it is a shell, its
    /// parent and user only when every process needs them (`ids_always`).
    pub fn read_facts(&self, pid: u32) -> Option<Facts> {
        let shell = |comm: &str, exe: &str| is_shell(&self.rules, comm, exe);
        let want = Want {
            ids: self.ids_always,
            stdio: &shell,
        };
        read_facts(&self.proc_root, pid, want)
    }

    /// Fills in the parent and user of a process found doing something, when they were not
    /// read with its facts.
    pub fn complete(&self, f: &Facts, p: &mut ProcessRef) {
        if !f.ids_read {
            read_ids(&self.proc_root, p);
        }
    }

    /// Appends to `out` what the process gives rise to (each kind once), as seen by
    /// `source` at `time_ms`.
    pub fn examine(&self, f: &Facts, source: &'static str, time_ms: u64, out: &mut Vec<Finding>) {
        let dir = self
            .proc_root
            .join(itoa::Buffer::new().format(f.process.pid));
        let p = Process {
            comm: &f.process.comm,
            exe: &f.process.exe,
            cmdline: &f.cmdline_raw,
            stdio: f.stdio,
        };
        // The TCP tables are read only when a rule asks (a shell with a socket on stdin).
        let tables: OnceCell<Vec<SocketRow>> = OnceCell::new();
        let rows = || tables.get_or_init(|| tcp_rows(&dir));
        let conn = |inode: u64| {
            rows()
                .iter()
                .find(|r| r.inode == inode && r.inode != 0)
                .map(Conn::tcp)
        };
        let listen: OnceCell<ListeningPorts> = OnceCell::new();
        let listening = |port: u16| {
            listen
                .get_or_init(|| ListeningPorts::of(rows()))
                .contains(port)
        };
        let in_upper = self.in_upper_layer(&dir, &f.process.exe);
        let mut kinds = Vec::new();
        judge_process(&p, &self.rules, in_upper, &conn, &listening, &mut kinds);
        let mut process = f.process.clone();
        if !kinds.is_empty() {
            self.complete(f, &mut process);
        }
        for kind in kinds {
            let (local, remote) = match kind {
                FindingKind::ReverseShell => match f.stdio[0] {
                    Fd::Socket { inode } => {
                        conn(inode).map_or((None, None), |c| (Some(c.local), Some(c.remote)))
                    }
                    _ => (None, None),
                },
                _ => (None, None),
            };
            out.push(Finding {
                kind,
                time_ms,
                source,
                process: Some(process.clone()),
                local,
                remote,
                peer: None,
            });
        }
    }

    /// Whether the executable lies in the upper directory of the process's root overlay:
    /// written into the container, not shipped in its image. A whiteout (a character device)
    /// is a deletion, not a file.
    fn in_upper_layer(&self, dir: &Path, exe: &str) -> bool {
        let Some(rel) = exe.strip_prefix('/') else {
            return false;
        };
        if exe.starts_with("/memfd:") || exe.ends_with(" (deleted)") {
            return false;
        }
        // The root as the process sees it (`pivot_root` and `chroot` move it, not the mount
        // namespace alone).
        let Ok(root) = std::fs::metadata(dir.join("root")) else {
            return false;
        };
        let dev = std::os::unix::fs::MetadataExt::dev(&root);
        let mut uppers = self.uppers.borrow_mut();
        let now = Instant::now();
        let fresh = |at: &Instant| now.duration_since(*at) < UPPER_TTL;
        if !uppers.get(&dev).is_some_and(|(at, _)| fresh(at)) {
            let Ok(mounts) = std::fs::read_to_string(dir.join("mountinfo")) else {
                return false;
            };
            if uppers.len() >= UPPERS_MAX {
                uppers.retain(|_, (at, _)| fresh(at));
            }
            let upper = overlay::root_upperdir(&mounts);
            uppers.insert(dev, (now, upper));
        }
        let Some((_, Some(upper))) = uppers.get(&dev) else {
            return false;
        };
        let found = upper.candidates().any(|c| {
            std::fs::symlink_metadata(statfs::host_path(&self.rootfs, c).join(rel))
                .is_ok_and(|m| m.is_file())
        });
        found
    }
}

/// The rows of a process's network namespace's `tcp` and `tcp6` tables (empty where they
/// cannot be read).
pub fn tcp_rows(proc_dir: &Path) -> Vec<SocketRow> {
    let mut rows = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc_dir.join(table)) {
            // A bad row is skipped; the good ones are still judged.
            let _ = sockets::parse_table_into(&text, &mut rows);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let s = "Name:\tbash\nPPid:\t41\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(status_ids(s), (41, 1000));
        assert_eq!(status_ids("garbage"), (0, 0));
    }

    #[test]
    fn cgroup_lines_by_setup() {
        let hybrid = "12:pids:/docker/abc\n11:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n";
        assert_eq!(cgroup_path(hybrid, Setup::Hybrid), Some("/docker/abc"));
        let unified = "0::/kubepods.slice/x.scope\n";
        assert_eq!(
            cgroup_path(unified, Setup::Unified),
            Some("/kubepods.slice/x.scope")
        );
        assert_eq!(
            cgroup_path(unified, Setup::Hybrid),
            Some("/kubepods.slice/x.scope")
        );
        let v1_only = "4:cpu,cpuacct:/a\n3:memory:/b\n";
        assert_eq!(cgroup_path(v1_only, Setup::Legacy), Some("/b"));
        assert_eq!(cgroup_path(v1_only, Setup::Unified), None);
        assert_eq!(cgroup_path("nonsense\n1:memory\n", Setup::Hybrid), None);
    }

    #[test]
    fn this_process_reads_and_is_not_judged() {
        let f =
            read_facts(Path::new("/proc"), std::process::id(), Want::ALL).expect("this process");
        assert_eq!(f.process.pid, std::process::id());
        assert!(!f.process.comm.is_empty());
        assert!(f.process.exe.starts_with('/'), "{}", f.process.exe);
        let ex = Examiner::new(
            Path::new("/proc"),
            Path::new("/"),
            Arc::new(Rules::default()),
            false,
        );
        let mut out = Vec::new();
        ex.examine(&f, "poll", 0, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_gone_pid_has_no_facts() {
        assert!(read_facts(Path::new("/proc"), 4_194_305, Want::ALL).is_none());
    }

    /// Gone between the read of its status and of its name: no facts, rather than a process
    /// with no name, executable or command line.
    #[test]
    fn a_pid_gone_after_its_status_has_no_facts() {
        let root = tempfile::tempdir().expect("a temp dir");
        let dir = root.path().join("77");
        std::fs::create_dir_all(&dir).expect("a fake /proc/77");
        std::fs::write(dir.join("status"), "PPid:\t1\nUid:\t0\t0\t0\t0\n").unwrap();
        assert!(read_facts(root.path(), 77, Want::ALL).is_none());
        std::fs::write(dir.join("comm"), "sh\n").unwrap();
        let f = read_facts(root.path(), 77, Want::ALL).expect("status and name");
        assert_eq!(
            (f.process.comm.as_str(), f.process.exe.as_str()),
            ("sh", "")
        );
    }
}
