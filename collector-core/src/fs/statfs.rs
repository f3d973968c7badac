//! The machine's real filesystems: which mounts count (pure, over parsed mountinfo rows), and
//! `statvfs` on them with a deadline, so a hung network mount cannot stall a sweep.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::mountinfo::MountEntry;

/// A filesystem's size and inodes from `statvfs`; inodes absent where it has no fixed count
/// (btrfs and some network filesystems report 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vfs {
    pub size_bytes: Option<u64>,
    pub avail_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub files: Option<u64>,
    pub files_free: Option<u64>,
    pub readonly: bool,
}

impl Vfs {
    // The field types differ between architectures; on x86-64 the conversions are no-ops.
    #[allow(clippy::useless_conversion)]
    pub fn stat(path: &Path) -> io::Result<Vfs> {
        let v = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        // f_frsize is the unit of the block counts.
        let unit = u64::from(v.fragment_size()).max(1);
        let files = u64::from(v.files());
        Ok(Vfs {
            size_bytes: Some(u64::from(v.blocks()).saturating_mul(unit)),
            avail_bytes: Some(u64::from(v.blocks_available()).saturating_mul(unit)),
            free_bytes: Some(u64::from(v.blocks_free()).saturating_mul(unit)),
            files: (files > 0).then_some(files),
            files_free: (files > 0).then(|| u64::from(v.files_free())),
            readonly: v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        })
    }
}

/// Filesystem types that hold no data of their own (or only container roots), skipped unless
/// `fs_types_include` names them.
pub const PSEUDO_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.lxcfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// Which mounts are reported, by mount point prefix and filesystem type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select<'a> {
    /// Only mount points under one of these (all when empty).
    pub mount_points_include: &'a [String],
    /// Never mount points under these. A prefix `/a` covers `/a` and `/a/...`; `/a/` only
    /// what lies strictly below `/a`.
    pub mount_points_exclude: &'a [String],
    /// Only these types (all but the excluded when empty); naming a pseudo type here reports it.
    pub fs_types_include: &'a [String],
    /// Never these types, on top of [`PSEUDO_FS_TYPES`].
    pub fs_types_exclude: &'a [String],
}

/// Whether `path` is `prefix` or lies under it (`prefix` ending in `/`: strictly under it).
pub fn under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    if prefix.ends_with('/') {
        return path.starts_with(prefix) && path.len() > prefix.len();
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The mounts to report, in table order: one per filesystem (major:minor), the mount of its
/// top directory preferred over bind mounts of a subdirectory, then the first seen.
pub fn select<'m>(mounts: &'m [MountEntry], sel: &Select<'_>) -> Vec<&'m MountEntry> {
    let wanted = |m: &MountEntry| {
        let t = m.fs_type.as_str();
        let type_ok = if sel.fs_types_include.is_empty() {
            !PSEUDO_FS_TYPES.contains(&t)
        } else {
            sel.fs_types_include.iter().any(|i| i == t)
        } && !sel.fs_types_exclude.iter().any(|x| x == t);
        let mp = m.mount_point.as_str();
        let point_ok = (sel.mount_points_include.is_empty()
            || sel.mount_points_include.iter().any(|p| under(mp, p)))
            && !sel.mount_points_exclude.iter().any(|p| under(mp, p));
        type_ok && point_ok
    };
    let mut out: Vec<&MountEntry> = Vec::new();
    for m in mounts.iter().filter(|m| wanted(m)) {
        match out
            .iter_mut()
            .find(|o| (o.major, o.minor) == (m.major, m.minor))
        {
            Some(o) if o.root != "/" && m.root == "/" => *o = m,
            Some(_) => {}
            None => out.push(m),
        }
    }
    out
}

/// A host path as this process sees it: under `rootfs` (the host's `/` mounted elsewhere).
pub fn host_path(rootfs: &Path, host: &str) -> PathBuf {
    rootfs.join(host.trim_start_matches('/'))
}

/// `statvfs` on a worker thread with a deadline per sweep. A call that does not return in time
/// marks its path stuck: it is skipped until that call returns, and the worker stuck in it is
/// left behind (a fresh one serves the next sweep).
#[derive(Debug, Default)]
pub struct TimedStatfs {
    worker: Option<Worker>,
    stuck: Arc<Mutex<HashSet<PathBuf>>>,
    /// What the current worker is in, shared so a timed-out sweep can name it.
    current: Arc<Mutex<Option<PathBuf>>>,
}

/// A statfs thread's job queue (batches of paths) and its answers (index in batch, result).
type Worker = (Sender<Vec<PathBuf>>, Receiver<(usize, io::Result<Vfs>)>);

/// The outcome for one path.
#[derive(Debug)]
pub enum StatOutcome {
    Ok(Vfs),
    Err(io::Error),
    /// Skipped: an earlier call on it has not returned yet, or this one ran past the deadline.
    Stuck,
}

impl TimedStatfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// One outcome per path, in order, all within about `timeout`.
    pub fn stat_all(&mut self, paths: &[PathBuf], timeout: Duration) -> Vec<StatOutcome> {
        let mut out: Vec<StatOutcome> = (0..paths.len()).map(|_| StatOutcome::Stuck).collect();
        if paths.is_empty() {
            return out;
        }
        let stuck: HashSet<PathBuf> = lock(&self.stuck).clone();
        let todo: Vec<PathBuf> = paths
            .iter()
            .filter(|p| !stuck.contains(*p))
            .cloned()
            .collect();
        let index: Vec<usize> = (0..paths.len())
            .filter(|i| !stuck.contains(&paths[*i]))
            .collect();
        if todo.is_empty() {
            return out;
        }
        let n = todo.len();
        let worker = match self.worker.take() {
            Some(w) => Some(w),
            None => self.spawn(),
        };
        let Some((tx, rx)) = worker else {
            // No thread could be started: stat inline rather than not at all.
            for (k, p) in todo.iter().enumerate() {
                out[index[k]] = outcome(Vfs::stat(p));
            }
            return out;
        };
        if tx.send(todo).is_err() {
            return out;
        }
        let deadline = Instant::now() + timeout;
        let mut got = 0;
        while got < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((k, r)) => {
                    if let Some(&i) = index.get(k) {
                        out[i] = outcome(r);
                    }
                    got += 1;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(p) = lock(&self.current).clone() {
                        tracing::warn!(
                            "statvfs({}) did not return within {timeout:?}; skipping it until it does",
                            p.display()
                        );
                        lock(&self.stuck).insert(p);
                    }
                    // Leave that worker to its call; the next sweep gets a new one.
                    return out;
                }
                Err(RecvTimeoutError::Disconnected) => return out,
            }
        }
        self.worker = Some((tx, rx));
        out
    }

    #[cfg(test)]
    /// Paths skipped because a call on them has not returned.
    pub fn stuck(&self) -> Vec<PathBuf> {
        lock(&self.stuck).iter().cloned().collect()
    }

    fn spawn(&mut self) -> Option<Worker> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Vec<PathBuf>>();
        let (res_tx, res_rx) = mpsc::channel();
        let stuck = self.stuck.clone();
        // Each worker has its own "current" slot: one left behind in a hung call must not
        // overwrite what its successor is doing.
        let current = Arc::new(Mutex::new(None));
        let cur = current.clone();
        let spawned = std::thread::Builder::new()
            .name("statfs".into())
            .spawn(move || {
                for batch in jobs_rx {
                    for (k, p) in batch.into_iter().enumerate() {
                        *lock(&cur) = Some(p.clone());
                        let r = Vfs::stat(&p);
                        *lock(&cur) = None;
                        // Whatever happened to the sweep that asked, the path answers again.
                        lock(&stuck).remove(&p);
                        if res_tx.send((k, r)).is_err() {
                            return;
                        }
                    }
                }
            });
        match spawned {
            // Detached: a worker stuck in a call is never joined; it ends when its call
            // returns and finds nobody listening, or when `jobs_tx` is dropped.
            Ok(_) => {
                self.current = current;
                Some((jobs_tx, res_rx))
            }
            Err(e) => {
                tracing::warn!("cannot start the statfs thread: {e}");
                None
            }
        }
    }
}

fn outcome(r: io::Result<Vfs>) -> StatOutcome {
    match r {
        Ok(v) => StatOutcome::Ok(v),
        Err(e) => StatOutcome::Err(e),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mp: &str, ty: &str, dev: &str, root: &str) -> MountEntry {
        let line = format!("1 0 {dev} {root} {mp} rw - {ty} src rw\n");
        crate::mountinfo::parse(&line).0.remove(0)
    }

    #[test]
    fn prefixes() {
        assert!(under("/dev", "/dev"));
        assert!(under("/dev/shm", "/dev"));
        assert!(!under("/devices", "/dev"));
        assert!(!under("/var/lib/docker", "/var/lib/docker/"));
        assert!(under(
            "/var/lib/docker/overlay2/x/merged",
            "/var/lib/docker/"
        ));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn selects_real_filesystems_once_each() {
        let m = vec![
            row("/proc", "proc", "0:21", "/"),
            row("/", "ext4", "254:0", "/"),
            row("/run/netns", "ext4", "254:0", "/run/netns"),
            row("/dev/shm", "tmpfs", "0:23", "/"),
            row("/data", "xfs", "8:16", "/sub"),
            row("/data2", "xfs", "8:16", "/"),
            row("/var/lib/docker", "ext4", "8:32", "/"),
            row("/var/lib/docker/overlay2/a/merged", "overlay", "0:50", "/"),
            row("/mnt/nfs", "nfs4", "0:60", "/"),
        ];
        let none: Vec<String> = Vec::new();
        let excl = vec!["/var/lib/docker/".to_string(), "/mnt".to_string()];
        let sel = Select {
            mount_points_include: &none,
            mount_points_exclude: &excl,
            fs_types_include: &none,
            fs_types_exclude: &none,
        };
        let got: Vec<&str> = select(&m, &sel)
            .iter()
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(got, ["/", "/data2", "/var/lib/docker"]);
        let tmpfs = vec!["tmpfs".to_string()];
        let sel = Select {
            fs_types_include: &tmpfs,
            ..sel
        };
        let got: Vec<&str> = select(&m, &sel)
            .iter()
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(got, ["/dev/shm"]);
    }

    #[test]
    fn timed_statfs_stats_and_skips_stuck_paths() {
        let d = tempfile::tempdir().unwrap();
        let paths = vec![d.path().to_path_buf(), d.path().join("missing")];
        let mut t = TimedStatfs::new();
        let out = t.stat_all(&paths, Duration::from_secs(5));
        assert!(matches!(&out[0], StatOutcome::Ok(v) if v.size_bytes.unwrap() > 0));
        assert!(matches!(&out[1], StatOutcome::Err(_)));
        // Again on the same worker.
        let out = t.stat_all(&paths, Duration::from_secs(5));
        assert!(matches!(&out[0], StatOutcome::Ok(_)));
        // A path whose earlier call never came back is skipped.
        lock(&t.stuck).insert(paths[0].clone());
        let out = t.stat_all(&paths, Duration::from_secs(5));
        assert!(matches!(&out[0], StatOutcome::Stuck));
        assert!(matches!(&out[1], StatOutcome::Err(_)));
        assert_eq!(t.stuck(), vec![paths[0].clone()]);
    }

    #[test]
    fn host_paths_under_rootfs() {
        assert_eq!(
            host_path(Path::new("/"), "/var/lib"),
            PathBuf::from("/var/lib")
        );
        assert_eq!(
            host_path(Path::new("/host/rootfs"), "/var/lib"),
            PathBuf::from("/host/rootfs/var/lib")
        );
        assert_eq!(host_path(Path::new("/host"), "/"), PathBuf::from("/host"));
    }
}
