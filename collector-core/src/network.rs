//! Network figures of a container, read from `/proc/<pid>/net/dev` of one of its processes:
//! that file shows the network namespace of the process, so no `setns` is needed.
//!
//! A process in the host's network namespace would show the host's interfaces and traffic.
//! Such a container is detected by comparing its namespace with the host's (PID 1's, or
//! kthreadd's), and gets no network figures rather than the host's (as cAdvisor does). The
//! namespace is told by the link `/proc/<pid>/ns/net`, which needs ptrace rights over the
//! process, or else by the inode of `/proc/<pid>/net/dev`, which is one per namespace and
//! needs no privilege at all.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::parse;
use crate::read::{CgDir, FdBudget, HeldFd, Reader};
use crate::security::sockets;
use crate::stats::{NetworkStats, NetworkStatus, SocketStats};

/// Reads network figures for the processes of the cgroups it is asked about, remembering each
/// namespace read during a sweep so that containers sharing one (a pod) cost one read.
#[derive(Debug)]
pub struct NetReader {
    proc_root: PathBuf,
    host_ns: Option<String>,
    host_ino: Option<u64>,
    /// `<proc_root>/<pid>`, rebuilt for each container without allocating.
    pid_dir: PathBuf,
    pid_str: String,
    /// Figures read during the current sweep, by namespace; entries past `seen_len` are kept
    /// only for their buffers.
    seen: Vec<NetworkStats>,
    seen_len: usize,
    seen_index: std::collections::HashMap<NsId, usize>,
    /// Socket states read during the current sweep, by namespace.
    seen_sockets: std::collections::HashMap<NsId, SocketStats>,
    /// Interfaces whose names start with one of these are left out.
    pub ignore: Vec<String>,
    /// Where process handles take their place; none held without one.
    pub budget: Option<FdBudget>,
}

impl NetReader {
    pub fn new(proc_root: &Path) -> Self {
        NetReader {
            proc_root: proc_root.to_path_buf(),
            host_ns: None,
            host_ino: None,
            pid_dir: PathBuf::new(),
            pid_str: String::new(),
            seen: Vec::new(),
            seen_len: 0,
            seen_index: std::collections::HashMap::new(),
            seen_sockets: std::collections::HashMap::new(),
            ignore: Vec::new(),
            budget: None,
        }
    }

    /// Starts a sweep: forgets the namespaces read in the last one and re-reads the host's.
    ///
    /// The host's namespace is PID 1's. Where PID 1's links cannot be read (it may be
    /// non-dumpable), kthreadd's (PID 2) serves: kernel threads always live in the initial
    /// network namespace. If neither can be read, containers cannot be told apart from the
    /// host and their figures are reported as read.
    pub fn begin_sweep(&mut self) {
        self.seen_len = 0;
        self.seen_index.clear();
        self.seen_sockets.clear();
        self.set_pid_dir(1);
        self.host_ns = ns_link(&self.pid_dir);
        self.host_ino = net_dev_ino(&self.pid_dir);
        if self.host_ns.is_none() {
            self.set_pid_dir(2);
            let is_kthreadd = std::fs::read_to_string(self.pid_dir.join("comm"))
                .is_ok_and(|c| c.trim() == "kthreadd");
            if is_kthreadd {
                self.host_ns = ns_link(&self.pid_dir);
            }
        }
    }

    fn set_pid_dir(&mut self, pid: u32) {
        use std::fmt::Write;
        self.pid_str.clear();
        let _ = write!(self.pid_str, "{pid}");
        self.pid_dir.clear();
        self.pid_dir.push(&self.proc_root);
        self.pid_dir.push(&self.pid_str);
    }

    /// A handle on process `pid` of a container: `/proc/<pid>` held open (within the
    /// descriptor budget) and its network namespace told once. While the process lives, the
    /// handle saves listing `cgroup.procs` and resolving `/proc/<pid>/...` on every sweep;
    /// a held directory also cannot be confused with a later process that reuses the pid.
    pub fn handle(&mut self, pid: u32) -> ProcHandle {
        self.set_pid_dir(pid);
        let mut dir = CgDir::new(self.pid_dir.clone());
        if let Some(b) = &self.budget {
            dir.hold(b);
        }
        // Told through the held directory where there is one: then it is this process's
        // namespace even if the pid passed to another process meanwhile.
        let (link, ino) = match dir.fd() {
            Some(fd) => (ns_link_at(fd), net_dev_ino_at(fd)),
            None => (ns_link(&self.pid_dir), net_dev_ino(&self.pid_dir)),
        };
        let in_host = match (&link, &self.host_ns, ino, self.host_ino) {
            (Some(l), Some(h), _, _) => l == h,
            (_, _, Some(i), Some(h)) => i == h,
            _ => false,
        };
        ProcHandle {
            pid,
            dir,
            ns: match (link.as_deref().and_then(ns_number), ino) {
                (Some(n), _) => Some(NsId::Link(n)),
                (None, Some(i)) => Some(NsId::NetDevInode(i)),
                (None, None) => None,
            },
            in_host,
            net_dev: None,
        }
    }

    /// Fills `out` for a container through the handle on one of its processes (`None` when
    /// it has none). False when that process has exited: get a new handle and read again.
    /// `idle`: the container's task count has not moved since the process was seen alive,
    /// so it has not exited (the check is skipped).
    pub fn read(
        &mut self,
        h: Option<&mut ProcHandle>,
        r: &mut Reader,
        out: &mut NetworkStats,
        idle: bool,
    ) -> bool {
        // Entries are kept from the last read and overwritten in place by the parser, so
        // interface names are not allocated again every sweep.
        let Some(h) = h else {
            out.status = NetworkStatus::NoProcess;
            out.interfaces.clear();
            return true;
        };
        if h.in_host {
            out.status = NetworkStatus::HostNamespace;
            out.interfaces.clear();
            return true;
        }
        if let Some(&i) = h.ns.as_ref().and_then(|ns| self.seen_index.get(ns)) {
            out.clone_from(&self.seen[i]);
            return true;
        }
        match h.read_net_dev(r, idle) {
            Some(text) => {
                out.status = NetworkStatus::Own;
                let ignore = &self.ignore;
                let skip = |name: &str| ignore.iter().any(|p| name.starts_with(p.as_str()));
                if let Err(reason) = parse::net_dev_except(text, &mut out.interfaces, skip) {
                    r.parse_error(reason);
                }
            }
            None => {
                // Exited: not a sign that the cgroup vanished.
                r.forgive_missing();
                out.status = NetworkStatus::NoProcess;
                out.interfaces.clear();
                return false;
            }
        }
        if let Some(ns) = h.ns {
            if self.seen_len == self.seen.len() {
                self.seen.push(NetworkStats::default());
            }
            self.seen[self.seen_len].clone_from(out);
            self.seen_index.insert(ns, self.seen_len);
            self.seen_len += 1;
        }
        true
    }
}

impl NetReader {
    /// The TCP and UDP sockets of `h`'s network namespace by state: its `net/tcp`, `tcp6`,
    /// `udp` and `udp6`, read once per namespace per sweep. Nothing for a container without
    /// a process or in the host's namespace (those would be the host's sockets).
    pub fn read_sockets(&mut self, h: Option<&ProcHandle>, r: &mut Reader, out: &mut SocketStats) {
        *out = SocketStats::default();
        let Some(h) = h.filter(|h| !h.in_host) else {
            return;
        };
        if let Some(seen) = h.ns.and_then(|ns| self.seen_sockets.get(&ns)) {
            out.clone_from(seen);
            return;
        }
        let dir = (&h.dir).into();
        out.tcp = table_counts(r, dir, "net/tcp", sockets::count_tcp);
        out.tcp6 = table_counts(r, dir, "net/tcp6", sockets::count_tcp);
        out.udp = table_counts(r, dir, "net/udp", sockets::count_udp);
        out.udp6 = table_counts(r, dir, "net/udp6", sockets::count_udp);
        // A table gone with its process is not a vanished cgroup.
        r.forgive_missing();
        if let Some(ns) = h.ns {
            self.seen_sockets.insert(ns, out.clone());
        }
    }
}

/// The rows of the TCP tables of the handle's network namespace (the host's, for a container
/// in it: the caller keeps the rows of its own sockets).
pub fn tcp_rows(h: &ProcHandle, r: &mut Reader, out: &mut Vec<sockets::SocketRow>) {
    out.clear();
    let dir: crate::read::Dir<'_> = (&h.dir).into();
    for table in ["net/tcp", "net/tcp6"] {
        let Some(text) = r.read_in(dir, table, false) else {
            continue;
        };
        if let Err(reason) = sockets::parse_table_into(text, out) {
            r.parse_error(reason);
        }
    }
    r.forgive_missing();
}

/// The addresses of the handle's network namespace: the IPv4 ones its `net/fib_trie` marks
/// local, and its `net/if_inet6`; loopback left out. A bad line is recorded, the good ones
/// kept.
pub fn local_addrs(h: &ProcHandle, r: &mut Reader, out: &mut Vec<std::net::IpAddr>) {
    let dir: crate::read::Dir<'_> = (&h.dir).into();
    type Parser = fn(&str, &mut Vec<std::net::IpAddr>) -> Result<(), parse::Reason>;
    let files: [(&str, Parser); 2] = [
        ("net/fib_trie", crate::security::peers::fib_trie_locals),
        ("net/if_inet6", crate::security::peers::if_inet6_addrs),
    ];
    for (name, parse) in files {
        // No fallback to the path: after an exit, /proc/<pid> may be another process. A
        // kernel without IPv6 has no if_inet6.
        let Some(text) = r.read_in(dir, name, false) else {
            continue;
        };
        if let Err(reason) = parse(text, out) {
            r.parse_error(reason);
        }
    }
    r.forgive_missing();
}

/// A socket table's counts, `None` when it cannot be read; a bad row is recorded, the
/// good ones counted.
fn table_counts<C: Default>(
    r: &mut Reader,
    dir: crate::read::Dir<'_>,
    name: &str,
    count: fn(&str, &mut C) -> Result<(), parse::Reason>,
) -> Option<C> {
    // No fallback to the path: after an exit, /proc/<pid> may be another process.
    let text = r.read_in(dir, name, false)?;
    let mut c = C::default();
    if let Err(reason) = count(text, &mut c) {
        r.parse_error(reason);
    }
    Some(c)
}

/// A process of a container, followed across sweeps for its network figures.
#[derive(Debug)]
pub struct ProcHandle {
    pub pid: u32,
    dir: CgDir,
    /// Its network namespace: the `ns/net` link, else the `net/dev` inode.
    ns: Option<NsId>,
    in_host: bool,
    /// Its `net/dev`, held open while `/proc/<pid>` is: opening, reading and closing it cost
    /// twice a read of the held file (the lookup goes through the process's namespace). It
    /// keeps that namespace alive as long as it is held, and is closed with the handle when
    /// the process exits.
    net_dev: Option<HeldFd>,
}

impl ProcHandle {
    /// The text of its `net/dev`; `None` when the process has exited. `known_alive` skips
    /// asking.
    fn read_net_dev<'r>(&mut self, r: &'r mut Reader, known_alive: bool) -> Option<&'r str> {
        if self.dir.is_held() {
            // A held file would still answer for an exited process: ask first.
            if !known_alive && !self.alive() {
                self.net_dev = None;
                return None;
            }
            if self.net_dev.is_none() {
                self.net_dev = match (self.dir.fd(), r.budget()) {
                    (Some(fd), Some(b)) => HeldFd::open_at(fd, c"net/dev", b),
                    _ => None,
                };
            }
            if let Some(f) = &self.net_dev {
                // Reborrowed so that a failed read can fall through to a fresh open.
                if r.read_held(f, &self.dir.path, "net/dev").is_some() {
                    return Some(r.last_text());
                }
                self.net_dev = None;
            }
        }
        // No fallback to the path: after an exit, /proc/<pid> may be another process.
        r.read_in((&self.dir).into(), "net/dev", false)
    }

    /// Its network namespace, where it could be told.
    pub(crate) fn ns(&self) -> Option<NsId> {
        self.ns
    }

    /// Whether it lives in the host's network namespace.
    pub fn in_host(&self) -> bool {
        self.in_host
    }

    /// Whether `/proc/<pid>` is held. Without it (descriptor budget spent) the handle must
    /// not outlive the sweep: the pid could pass to another process.
    pub fn is_held(&self) -> bool {
        self.dir.is_held()
    }

    /// Whether the process is still there (through the held directory; a handle without
    /// one is used within the sweep that made it only). Any entry of an exited process's
    /// directory is gone; `cgroup` is one every process has (and captures keep).
    pub fn alive(&self) -> bool {
        use nix::fcntl::AtFlags;
        use nix::unistd::{faccessat, AccessFlags};
        use std::os::fd::AsRawFd;
        match self.dir.fd() {
            Some(fd) => faccessat(
                Some(fd.as_raw_fd()),
                c"cgroup",
                AccessFlags::F_OK,
                AtFlags::empty(),
            )
            .is_ok(),
            None => true,
        }
    }
}

/// `readlinkat(dir, "ns/net")`. Raw libc: nix's readlinkat allocates a PATH_MAX buffer per
/// call, and this runs for every process handle made.
fn ns_link_at(dir: std::os::fd::BorrowedFd<'_>) -> Option<String> {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 64];
    // SAFETY: the buffer outlives the call and its length is passed; the result is checked.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c"ns/net".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok().filter(|&n| n < buf.len())?;
    std::str::from_utf8(&buf[..n]).ok().map(str::to_string)
}

/// `fstatat(dir, "net/dev")`'s inode.
fn net_dev_ino_at(dir: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    use nix::fcntl::AtFlags;
    use std::os::fd::AsRawFd;
    nix::sys::stat::fstatat(Some(dir.as_raw_fd()), c"net/dev", AtFlags::empty())
        .ok()
        .map(|st| st.st_ino)
}

/// A network namespace: its inode number from the `ns/net` link, or the inode of `net/dev`
/// (one per namespace too, but of procfs, so kept apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NsId {
    Link(u64),
    NetDevInode(u64),
}

/// The number in a namespace link, `net:[4026531840]`.
fn ns_number(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The inode of `<pid>/net/dev`: the same for every process of one network namespace.
fn net_dev_ino(pid_dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(pid_dir.join("net/dev"))
        .ok()
        .map(|m| m.ino())
}

/// The namespace link (`net:[4026531840]`); readlink works even on a copy of it in a fixture.
fn ns_link(pid_dir: &Path) -> Option<String> {
    std::fs::read_link(pid_dir.join("ns/net"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// First pid listed in a cgroup's `cgroup.procs`, if any.
pub fn first_pid(r: &mut Reader, dir: crate::read::Dir<'_>) -> Option<u32> {
    let text = r.read(dir, "cgroup.procs")?;
    let first = text.lines().next()?;
    match first.trim().parse::<u32>() {
        Ok(p) => Some(p),
        Err(_) => {
            let reason = format!("not a pid: {first:?}");
            r.record(Error::parse(r.last_path(), reason));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ns_number;

    #[test]
    fn namespace_numbers_come_from_the_link() {
        assert_eq!(ns_number("net:[4026531840]"), Some(4_026_531_840));
        assert_eq!(ns_number("net:[]"), None);
        assert_eq!(ns_number("mnt:[4026531840]"), None);
        assert_eq!(ns_number("net:[12x]"), None);
    }
}
