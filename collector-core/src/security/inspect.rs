//! Looking at one process in `/proc` and judging it: what the exec watch does at the moment
//! of an exec, and what a sweep does for a process new in `cgroup.procs`.

use std::cell::OnceCell;
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::finding::{cmdline_text, Finding, ProcessRef, CMDLINE_MAX};
use super::judge::{judge_process, Conn, Fd, FindingKind, Process, Rules};
use super::sockets::{self, SocketRow, TcpState};
use crate::fs::{overlay, statfs};
use crate::hierarchy::Setup;

/// A process as read from `/proc/<pid>`.
#[derive(Debug, Clone)]
pub struct Facts {
    pub process: ProcessRef,
    /// The command line as read (NUL-separated), at most [`CMDLINE_MAX`] bytes.
    pub cmdline_raw: Vec<u8>,
    pub stdio: [Fd; 3],
}

/// Reads a process's facts; `None` when it is gone (its status or its name cannot be read:
/// a process reaped between the two reads would otherwise be judged with no name, no
/// executable and no command line, and a policy would find any such process unexpected).
/// A zombie still has both; its executable and command line read as empty.
///
/// The name is read again after the executable and the command line: when it changed, the
/// process exec'd (or renamed itself) in between, and the facts, which would mix two
/// programs (`sh` running `/tmp/sleep`), are read again, up to `READS` times.
pub fn read_facts(proc_root: &Path, pid: u32) -> Option<Facts> {
    let dir = proc_root.join(itoa::Buffer::new().format(pid));
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let (ppid, uid) = status_ids(&status);
    let read_comm = || {
        std::fs::read_to_string(dir.join("comm"))
            .ok()
            .map(|c| c.trim_end_matches('\n').to_owned())
    };
    let mut comm = read_comm()?;
    let mut exe;
    let mut cmdline_raw = Vec::new();
    let mut reads = 0;
    loop {
        reads += 1;
        exe = link(&dir.join("exe")).unwrap_or_default();
        cmdline_raw.clear();
        if let Ok(f) = File::open(dir.join("cmdline")) {
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
    let fd = dir.join("fd");
    let stdio = [0, 1, 2].map(|n| {
        link(&fd.join(itoa::Buffer::new().format(n))).map_or(Fd::Unknown, |t| Fd::from_link(&t))
    });
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
    })
}

/// Reads of a process's facts at most, while its name keeps changing under them.
const READS: usize = 3;

fn link(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
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
}

impl Examiner {
    pub fn new(proc_root: &Path, rootfs: &Path, rules: Arc<Rules>) -> Examiner {
        Examiner {
            proc_root: proc_root.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            rules,
        }
    }

    /// Appends to `out` what the process gives rise to (each kind once), as seen by
    /// `source` at `time_ms`.
    pub fn examine(&self, f: &Facts, source: &'static str, time_ms: u64, out: &mut Vec<Finding>) {
        let dir = self
            .proc_root
            .join(itoa::Buffer::new().format(f.process.pid));
        let p = Process {
            pid: f.process.pid,
            ppid: f.process.ppid,
            comm: &f.process.comm,
            exe: &f.process.exe,
            cmdline: &f.cmdline_raw,
            uid: f.process.uid,
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
        let listening = |port: u16| {
            rows()
                .iter()
                .any(|r| r.tcp_state() == Some(TcpState::Listen) && r.local.port() == port)
        };
        let in_upper = self.in_upper_layer(&dir, &f.process.exe);
        let mut kinds = Vec::new();
        judge_process(&p, &self.rules, in_upper, &conn, &listening, &mut kinds);
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
                process: Some(f.process.clone()),
                local,
                remote,
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
        let Ok(mounts) = std::fs::read_to_string(dir.join("mountinfo")) else {
            return false;
        };
        let Some(upper) = overlay::root_upperdir(&mounts) else {
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

/// A listening socket's port, for [`Finding::local`].
pub fn listen_addr(row: &SocketRow) -> Option<SocketAddr> {
    (row.tcp_state() == Some(TcpState::Listen)).then_some(row.local)
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
        let f = read_facts(Path::new("/proc"), std::process::id()).expect("this process");
        assert_eq!(f.process.pid, std::process::id());
        assert!(!f.process.comm.is_empty());
        assert!(f.process.exe.starts_with('/'), "{}", f.process.exe);
        let ex = Examiner::new(
            Path::new("/proc"),
            Path::new("/"),
            Arc::new(Rules::default()),
        );
        let mut out = Vec::new();
        ex.examine(&f, "poll", 0, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_gone_pid_has_no_facts() {
        assert!(read_facts(Path::new("/proc"), 4_194_305).is_none());
    }

    /// Gone between the read of its status and of its name: no facts, rather than a process
    /// with no name, executable or command line.
    #[test]
    fn a_pid_gone_after_its_status_has_no_facts() {
        let root = tempfile::tempdir().expect("a temp dir");
        let dir = root.path().join("77");
        std::fs::create_dir_all(&dir).expect("a fake /proc/77");
        std::fs::write(dir.join("status"), "PPid:\t1\nUid:\t0\t0\t0\t0\n").unwrap();
        assert!(read_facts(root.path(), 77).is_none());
        std::fs::write(dir.join("comm"), "sh\n").unwrap();
        let f = read_facts(root.path(), 77).expect("status and name");
        assert_eq!(
            (f.process.comm.as_str(), f.process.exe.as_str()),
            ("sh", "")
        );
    }
}
