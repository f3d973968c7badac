//! One container's processes, listed as cAdvisor's `/api/v2.0/ps` lists them, read from procfs
//! on request rather than by forking `ps`. Sweeps never call this.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;

use serde::Serialize;

use crate::dirs::PREFERENCE;
use crate::error::{is_vanished, Error, Result};
use crate::hierarchy::{Hierarchy, Roots, Setup};
use crate::parse;
use crate::processes::{walk_fds, Walk};

/// At most this many processes are listed; [`ProcessList::truncated`] says when there were more.
pub const MAX_PROCESSES: usize = 10_000;

/// A command line is cut to this many bytes.
pub const CMDLINE_MAX: usize = 4096;

/// One process, as `ps` would show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessInfo {
    /// Process id, as the host's `/proc` sees it.
    pub pid: u32,
    /// Parent's pid (`/proc/<pid>/stat`).
    pub ppid: u32,
    /// The effective uid's name in the host's `/etc/passwd`; `None` when it has none there.
    pub user: Option<String>,
    /// Effective uid (`/proc/<pid>/status` `Uid:`).
    pub uid: u32,
    /// Command name (`/proc/<pid>/stat` comm, at most 15 bytes).
    pub comm: String,
    /// Where `/proc/<pid>/exe` points; empty when it cannot be read (kernel threads, no rights).
    pub exe: String,
    /// The arguments joined by spaces, cut to [`CMDLINE_MAX`] bytes; empty for kernel threads.
    pub cmdline: String,
    /// Unix time of its start, in milliseconds.
    pub start_time_ms: u64,
    /// User and system CPU time.
    pub cpu_seconds: f64,
    /// Resident memory in bytes (`/proc/<pid>/stat` rss pages times the page size).
    pub rss_bytes: u64,
    /// Threads (`/proc/<pid>/stat` `num_threads`).
    pub threads: u64,
    /// Open descriptors; `None` when its `fd` directory cannot be read.
    pub fds: Option<u64>,
    /// Those of them that are sockets.
    pub sockets: Option<u64>,
    /// The state letter of `/proc/<pid>/stat` (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
}

/// A container's processes, by pid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessList {
    /// The processes, sorted by pid, at most [`MAX_PROCESSES`].
    pub processes: Vec<ProcessInfo>,
    /// It had more than [`MAX_PROCESSES`]; those with the lowest pids are listed.
    pub truncated: bool,
}

/// Lists the processes of cgroup `id` (`/docker/<id>`; `/`, the machine, lists every process
/// on the host, as cAdvisor does). Reads `<proc_root>`; user names come from
/// `<host_root>/etc/passwd`, read once per call. A process that exits meanwhile is left out.
pub fn list_processes(
    roots: &Roots,
    hierarchy: &Hierarchy,
    id: &str,
    host_root: &Path,
) -> Result<ProcessList> {
    check_id(id)?;
    let mut pids = if id == "/" {
        all_pids(&roots.proc_root)?
    } else {
        cgroup_pids(hierarchy, id)?
    };
    // v1 promises neither order nor uniqueness.
    pids.sort_unstable();
    pids.dedup();
    let truncated = pids.len() > MAX_PROCESSES;
    pids.truncate(MAX_PROCESSES);
    let host = Host::read(&roots.proc_root)?;
    let users = users(host_root);
    let mut processes = Vec::with_capacity(pids.len());
    for pid in pids {
        if let Some(p) = read_process(&roots.proc_root.join(pid.to_string()), pid, &host)? {
            processes.push(ProcessInfo {
                user: users.get(&p.uid).cloned(),
                ..p
            });
        }
    }
    Ok(ProcessList {
        processes,
        truncated,
    })
}

/// An id is a cgroup path: absolute, and never climbing out of the hierarchy.
fn check_id(id: &str) -> Result<()> {
    let reason = if !id.starts_with('/') {
        "must start with /"
    } else if id.split('/').any(|c| c == "..") {
        "must not contain `..`"
    } else if id.contains('\0') {
        "must not contain NUL"
    } else {
        return Ok(());
    };
    Err(Error::Invalid {
        what: "container id",
        value: id.to_string(),
        reason: reason.into(),
    })
}

/// The pids in the cgroup's `cgroup.procs`: cgroup2's on unified hosts, else the first v1
/// hierarchy that has the cgroup (the hybrid twin may hold none of its processes), as the
/// collector's own process reads do.
fn cgroup_pids(h: &Hierarchy, id: &str) -> Result<Vec<u32>> {
    let v1 = (h.setup != Setup::Unified).then(|| PREFERENCE.iter().filter_map(|&c| h.v1(c)));
    let mounts = v1.into_iter().flatten().chain(h.unified.as_ref());
    let mut missing = None;
    for dir in mounts.filter_map(|m| m.dir_of(id)) {
        let path = dir.join("cgroup.procs");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut pids = Vec::new();
                parse::u64_list(&text, &mut pids).map_err(|r| Error::parse(&path, r))?;
                return pids
                    .into_iter()
                    .map(|p| u32::try_from(p).map_err(|_| Error::parse(&path, "pid too large")))
                    .collect();
            }
            Err(e) if is_vanished(&e) => missing = Some(Error::read(&path, e)),
            Err(e) => return Err(Error::read(&path, e)),
        }
    }
    // In no mounted hierarchy: as good as a vanished cgroup.
    Err(missing.unwrap_or_else(|| Error::read(Path::new(id), enoent())))
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// Every process on the host: the numeric entries of `<proc_root>`.
fn all_pids(proc_root: &Path) -> Result<Vec<u32>> {
    let entries = std::fs::read_dir(proc_root).map_err(|e| Error::read(proc_root, e))?;
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect())
}

/// What turns ticks and pages into times and bytes.
struct Host {
    boot_ms: u64,
    ticks_per_s: u64,
    page_size: u64,
}

impl Host {
    fn read(proc_root: &Path) -> Result<Host> {
        use nix::unistd::{sysconf, SysconfVar};
        let path = proc_root.join("stat");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::read(&path, e))?;
        let btime = parse::btime(&text).map_err(|r| Error::parse(&path, r))?;
        let conf = |v, default: u64| match sysconf(v) {
            Ok(Some(n)) if n > 0 => n as u64,
            _ => default,
        };
        Ok(Host {
            boot_ms: btime.saturating_mul(1000),
            ticks_per_s: conf(SysconfVar::CLK_TCK, 100),
            page_size: conf(SysconfVar::PAGE_SIZE, 4096),
        })
    }
}

/// One process from `<proc_root>/<pid>` (`dir`); `None` when it is gone. `stat` and `status`
/// must read; the rest is best effort (a kernel thread has no `exe`).
fn read_process(dir: &Path, pid: u32, host: &Host) -> Result<Option<ProcessInfo>> {
    let stat_path = dir.join("stat");
    let Some(stat) = read_lossy(&stat_path)? else {
        return Ok(None);
    };
    let s = parse::pid_stat(&stat).map_err(|r| Error::parse(&stat_path, r))?;
    let status_path = dir.join("status");
    let Some(status) = read_lossy(&status_path)? else {
        return Ok(None);
    };
    let uid = parse::status_euid(&status).map_err(|r| Error::parse(&status_path, r))?;
    let (fds, sockets) = match walk_fds(&dir.join("fd"), None) {
        Walk::Counted { fds, sockets } => (Some(fds), Some(sockets)),
        Walk::Unreadable => (None, None),
        Walk::Gone => return Ok(None),
    };
    let exe = std::fs::read_link(dir.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ticks = host.ticks_per_s;
    Ok(Some(ProcessInfo {
        pid,
        ppid: s.ppid,
        user: None,
        uid,
        comm: s.comm.to_string(),
        exe,
        cmdline: cmdline(&dir.join("cmdline")),
        start_time_ms: host
            .boot_ms
            .saturating_add(s.start_ticks.saturating_mul(1000) / ticks),
        cpu_seconds: s.utime.saturating_add(s.stime) as f64 / ticks as f64,
        rss_bytes: s.rss_pages.saturating_mul(host.page_size),
        threads: s.threads,
        fds,
        sockets,
        state: char::from(s.state),
    }))
}

/// A procfs file as text (a comm may be any bytes); `None` when the process is gone.
fn read_lossy(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if is_vanished(&e) => Ok(None),
        Err(e) => Err(Error::read(path, e)),
    }
}

/// The NUL-separated arguments joined by spaces, at most [`CMDLINE_MAX`] bytes; empty when
/// unreadable.
fn cmdline(path: &Path) -> String {
    let mut raw = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(CMDLINE_MAX as u64).read_to_end(&mut raw));
    if read.is_err() {
        return String::new();
    }
    while raw.last() == Some(&0) {
        raw.pop();
    }
    for b in &mut raw {
        if *b == 0 {
            *b = b' ';
        }
    }
    let mut s = String::from_utf8_lossy(&raw).into_owned();
    // A character cut at the limit became U+FFFD, which may be longer than what it replaced.
    if s.len() > CMDLINE_MAX {
        let mut end = CMDLINE_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// uid -> name from `<host_root>/etc/passwd`; empty when it cannot be read. The first entry
/// of a uid wins, as with getpwuid.
fn users(host_root: &Path) -> HashMap<u32, String> {
    let path = host_root.join("etc/passwd");
    let text = match std::fs::read(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            tracing::debug!("no user names: reading {}: {e}", path.display());
            return HashMap::new();
        }
    };
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(':');
        if let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) {
            if let (false, Ok(uid)) = (name.is_empty(), uid.parse::<u32>()) {
                out.entry(uid).or_insert_with(|| name.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
