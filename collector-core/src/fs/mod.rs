//! Filesystem figures: each container's writable layer (measured in the background by
//! `walker`) and the host's mount table for the machine's own filesystems.
//!
//! A container's layer is found once: the root mount in `/proc/<pid>/mountinfo` of a process
//! in its cgroup, when that is an overlay, names its `upperdir` (a host path, read under
//! [`FsConfig::rootfs`]). The sweep then only looks up the last finished walk of that
//! directory; it never walks anything itself.

pub mod overlay;
pub(crate) mod statfs;
mod walk;
mod walker;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::devices::DeviceNames;
use crate::error::{is_vanished, Error};
use crate::identity::Kind;
use crate::mountinfo::{self, MountEntry};
use crate::stats::FsStats;

/// Filesystem collection settings (`Config::fs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FsConfig {
    /// Where the host's `/` is visible to this process (`/host/rootfs` when the collector runs
    /// in a container). Overlay upper directories and mount points are host paths.
    pub rootfs: PathBuf,
    /// Measure each overlay-rooted container's writable layer.
    pub container_layers: bool,
    /// A layer is walked again this long after its last walk finished.
    pub interval: Duration,
    /// Walker threads: at most this many layers are walked at once.
    pub workers: usize,
    /// Wall time one walk runs before it yields to the other layers due (it resumes later).
    pub walk_budget: Duration,
    /// A layer whose walk overran its budget is walked at twice the interval, and so on, up
    /// to this.
    pub max_backoff: Duration,
    /// Report the machine's filesystems (space and inodes).
    pub machine_filesystems: bool,
    /// Only mount points under these (all when empty).
    pub mount_points_include: Vec<String>,
    /// Never mount points under these; a trailing `/` means strictly below.
    pub mount_points_exclude: Vec<String>,
    /// Only these filesystem types (when empty: all but pseudo filesystems).
    pub fs_types_include: Vec<String>,
    /// Never these types (pseudo filesystems are always skipped unless included by name).
    pub fs_types_exclude: Vec<String>,
    /// `statvfs` on all the machine's filesystems must answer within this per sweep; one that
    /// hangs (a dead network mount) is skipped until it answers.
    pub statfs_timeout: Duration,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            rootfs: PathBuf::from("/"),
            container_layers: true,
            interval: Duration::from_secs(60),
            workers: 2,
            walk_budget: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30 * 60),
            machine_filesystems: true,
            mount_points_include: Vec::new(),
            mount_points_exclude: [
                "/proc",
                "/sys",
                "/dev",
                "/run/credentials/",
                "/run/containerd/",
                "/run/docker/",
                "/var/lib/docker/",
                "/var/lib/containerd/",
                "/var/lib/containers/storage/",
                "/var/lib/kubelet/pods/",
                "/snap/",
            ]
            .map(String::from)
            .to_vec(),
            fs_types_include: Vec::new(),
            fs_types_exclude: Vec::new(),
            statfs_timeout: Duration::from_secs(1),
        }
    }
}

impl FsConfig {
    /// The mount filters of these settings, as the machine's filesystem listing applies them.
    pub fn select(&self) -> statfs::Select<'_> {
        statfs::Select {
            mount_points_include: &self.mount_points_include,
            mount_points_exclude: &self.mount_points_exclude,
            fs_types_include: &self.fs_types_include,
            fs_types_exclude: &self.fs_types_exclude,
        }
    }
}

/// A filesystem's figures this sweep, by device numbers: fresher than the walk's own `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backing {
    pub major: u32,
    pub minor: u32,
    pub size_bytes: u64,
    pub avail_bytes: u64,
    pub files: Option<u64>,
    pub files_free: Option<u64>,
}

#[derive(Debug)]
struct Layer {
    upper: Option<PathBuf>,
    looked: Option<Instant>,
    seen: u64,
}

/// The sweep's side of layer measurement: which container has which upper directory, and
/// the walker that measures them.
#[derive(Debug)]
pub(crate) struct Layers {
    proc_root: PathBuf,
    rootfs: PathBuf,
    /// How often to look again at a container whose root mount gave no layer yet.
    retry: Duration,
    walker: walker::Walker,
    known: HashMap<String, Layer>,
    sweep: u64,
    backing: Vec<Backing>,
    buf: String,
}

impl Layers {
    pub fn new(proc_root: &Path, cfg: &FsConfig) -> Layers {
        Layers {
            proc_root: proc_root.to_path_buf(),
            rootfs: cfg.rootfs.clone(),
            retry: cfg.interval.min(Duration::from_secs(10)),
            walker: walker::Walker::new(walker::Pace {
                interval: cfg.interval,
                workers: cfg.workers,
                budget: cfg.walk_budget,
                max_backoff: cfg.max_backoff,
            }),
            known: HashMap::new(),
            sweep: 0,
            backing: Vec::new(),
            buf: String::new(),
        }
    }

    /// Starts a sweep: `backing` are the machine's filesystems as read in this sweep.
    pub fn begin_sweep(&mut self, backing: impl IntoIterator<Item = Backing>) {
        self.sweep += 1;
        self.backing.clear();
        self.backing.extend(backing);
    }

    /// The layer figures of one container (`pid` is a process in its cgroup), or `None` when
    /// it has no overlay root or no walk of it has finished yet.
    pub fn read(
        &mut self,
        id: &str,
        kind: Kind,
        pid: Option<u32>,
        devices: &mut DeviceNames,
        now_ms: u64,
    ) -> Option<FsStats> {
        if kind != Kind::Container {
            return None;
        }
        let sweep = self.sweep;
        let layer = match self.known.get_mut(id) {
            Some(l) => l,
            None => self.known.entry(id.to_string()).or_insert(Layer {
                upper: None,
                looked: None,
                seen: sweep,
            }),
        };
        layer.seen = sweep;
        if layer.upper.is_none() && layer.looked.is_none_or(|t| t.elapsed() >= self.retry) {
            if let Some(pid) = pid {
                layer.looked = Some(Instant::now());
                layer.upper = find_upper(&self.proc_root, &self.rootfs, pid, &mut self.buf);
            }
        }
        let upper = layer.upper.as_ref()?;
        // Asks for it again if another cgroup with the same layer was forgotten meanwhile.
        let m = self.walker.get(upper)?;
        let fresh = self
            .backing
            .iter()
            .find(|b| (b.major, b.minor) == (m.major, m.minor));
        Some(FsStats {
            major: m.major,
            minor: m.minor,
            device: devices.name(m.major, m.minor).map(str::to_string),
            upperdir: upper.to_string_lossy().into_owned(),
            usage_bytes: m.bytes,
            inodes_used: m.inodes,
            limit_bytes: fresh.map(|b| b.size_bytes).or(m.size_bytes),
            available_bytes: fresh.map(|b| b.avail_bytes).or(m.avail_bytes),
            inodes_total: fresh.map_or(m.files, |b| b.files),
            inodes_free: fresh.map_or(m.files_free, |b| b.files_free),
            measured_ms: m.finished_ms,
            age_ms: now_ms.saturating_sub(m.finished_ms),
            walk_duration_ms: m.elapsed.as_millis() as u64,
            backoff: m.backoff,
        })
    }

    /// Ends a sweep: containers not read in it are gone, and so is the walking of their layers.
    pub fn end_sweep(&mut self) {
        let sweep = self.sweep;
        let mut gone = Vec::new();
        self.known.retain(|_, l| {
            let keep = l.seen == sweep;
            if !keep {
                gone.extend(l.upper.take());
            }
            keep
        });
        if gone.is_empty() {
            return;
        }
        // Another cgroup may share the layer (nested cgroups of one container).
        let in_use: std::collections::HashSet<&PathBuf> = self
            .known
            .values()
            .filter_map(|l| l.upper.as_ref())
            .collect();
        for u in gone.iter().filter(|u| !in_use.contains(u)) {
            self.walker.forget(u);
        }
    }

    /// Waits until every layer found so far has had a first walk (see [`walker::Walker::settle`]).
    pub fn settle(&self, timeout: Duration) -> bool {
        self.walker.settle(timeout)
    }

    /// Walker threads running.
    pub fn threads(&self) -> usize {
        self.walker.threads()
    }

    #[cfg(test)]
    /// Layers being measured.
    pub fn measured(&self) -> usize {
        self.walker.len()
    }
}

/// The host path of the writable layer of `pid`'s root overlay, if it has one that exists.
fn find_upper(proc_root: &Path, rootfs: &Path, pid: u32, buf: &mut String) -> Option<PathBuf> {
    let path = proc_root.join(pid.to_string()).join("mountinfo");
    buf.clear();
    if let Err(e) = File::open(&path).and_then(|mut f| f.read_to_string(buf)) {
        if !is_vanished(&e) {
            tracing::debug!("reading {}: {e}", path.display());
        }
        return None;
    }
    let upper = overlay::root_upperdir(buf)?;
    let found = upper
        .candidates()
        .map(|c| statfs::host_path(rootfs, c))
        .find(|p| p.is_dir());
    if found.is_none() {
        tracing::debug!(
            "the upper directory {} of pid {pid} is not visible under {}",
            upper.path,
            rootfs.display()
        );
    }
    found
}

/// The host's mount table, read from `<proc_root>/1/mountinfo` (else `self`), and read again
/// only when the kernel says it changed (procfs signals a mount table change to `poll`).
#[derive(Debug, Default)]
pub(crate) struct HostMounts {
    file: Option<(File, PathBuf, bool)>,
    entries: Vec<MountEntry>,
    buf: String,
}

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

impl HostMounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current table; on failure the error and the last table read (maybe empty).
    pub fn get(&mut self, proc_root: &Path, errors: &mut Vec<Error>) -> &[MountEntry] {
        let fresh = self.file.is_none();
        if fresh {
            let mut last = None;
            for who in ["1", "self"] {
                let p = proc_root.join(who).join("mountinfo");
                match File::open(&p) {
                    Ok(f) => {
                        // f_type's width differs between architectures.
                        #[allow(clippy::unnecessary_cast)]
                        let on_proc = nix::sys::statfs::fstatfs(&f)
                            .map(|s| s.filesystem_type().0 as i64 == PROC_SUPER_MAGIC)
                            .unwrap_or(false);
                        self.file = Some((f, p, on_proc));
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(Error::read(&p, e)),
                }
            }
            if let Some(e) = last {
                errors.push(e);
                return &self.entries;
            }
        }
        let Some((f, path, on_proc)) = self.file.as_mut() else {
            return &self.entries;
        };
        if !fresh && *on_proc && !changed(f) {
            return &self.entries;
        }
        self.buf.clear();
        let read = f.rewind().and_then(|_| f.read_to_string(&mut self.buf));
        match read {
            Ok(_) => {
                let (entries, bad) = mountinfo::parse(&self.buf);
                if let Some(reason) = bad {
                    errors.push(Error::parse(path, reason));
                }
                self.entries = entries;
            }
            Err(e) => {
                errors.push(Error::read(path, e));
                // Open it afresh next time (the process may be gone).
                self.file = None;
            }
        }
        &self.entries
    }
}

/// Whether procfs flags a change of the mount table since the last look.
fn changed(f: &File) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLPRI)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        // Flags nix does not know (`None`) count as a change: reading again is safe.
        Ok(_) => fds[0]
            .revents()
            .is_none_or(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLPRI)),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_follow_containers_and_share_upper_dirs() {
        let d = tempfile::tempdir().unwrap();
        let proc_root = d.path().join("proc");
        let rootfs = d.path().join("root");
        let upper = rootfs.join("var/lib/x y/diff");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(proc_root.join("7")).unwrap();
        std::fs::write(
            proc_root.join("7/mountinfo"),
            "1 0 0:9 / / rw - overlay overlay rw,lowerdir=/l,upperdir=/var/lib/x\\040y/diff,workdir=/w\n",
        )
        .unwrap();
        let cfg = FsConfig {
            rootfs: rootfs.clone(),
            interval: Duration::from_millis(20),
            ..FsConfig::default()
        };
        let mut layers = Layers::new(&proc_root, &cfg);
        let mut dev = DeviceNames::new(d.path().join("sys"));
        let sweep = |layers: &mut Layers, ids: &[&str], dev: &mut DeviceNames| {
            layers.begin_sweep([]);
            let got: Vec<Option<FsStats>> = ids
                .iter()
                .map(|id| layers.read(id, Kind::Container, Some(7), dev, 0))
                .collect();
            layers.end_sweep();
            got
        };
        // Not a container: never looked at.
        layers.begin_sweep([]);
        assert_eq!(
            layers.read("/system.slice/x", Kind::Systemd, Some(7), &mut dev, 0),
            None
        );
        layers.end_sweep();
        assert_eq!(layers.measured(), 0);
        sweep(&mut layers, &["/a", "/a/nested"], &mut dev);
        assert!(layers.settle(Duration::from_secs(20)));
        let got = sweep(&mut layers, &["/a", "/a/nested"], &mut dev);
        let fs = got[0].clone().unwrap();
        assert_eq!(fs.upperdir, upper.to_str().unwrap());
        assert_eq!(fs.inodes_used, 1);
        assert_eq!(got[1].as_ref().unwrap().upperdir, fs.upperdir);
        assert_eq!(layers.measured(), 1);
        // One of the two goes: the layer is still measured for the other.
        assert!(sweep(&mut layers, &["/a"], &mut dev)[0].is_some());
        assert_eq!(layers.measured(), 1);
        // Both gone: forgotten.
        sweep(&mut layers, &[], &mut dev);
        assert_eq!(layers.measured(), 0);
    }

    #[test]
    fn host_mounts_reread_only_on_change() {
        let mut hm = HostMounts::new();
        let mut errors = Vec::new();
        // The real table of this process (read again only when procfs flags a change; the
        // loop-device test in tests/tests/filesystem.rs mounts one between sweeps).
        let before = hm.get(Path::new("/proc"), &mut errors).len();
        assert!(before > 0, "{errors:?}");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(hm.get(Path::new("/proc"), &mut errors).len(), before);

        // A fixture file (not procfs) is read every time.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("self")).unwrap();
        let mi = root.path().join("self/mountinfo");
        std::fs::write(&mi, "27 1 254:0 / / rw - ext4 /dev/vda rw\n").unwrap();
        let mut hm = HostMounts::new();
        assert_eq!(hm.get(root.path(), &mut errors).len(), 1);
        std::fs::write(
            &mi,
            "27 1 254:0 / / rw - ext4 /dev/vda rw\n28 27 8:1 / /d rw - xfs /dev/sda1 rw\n",
        )
        .unwrap();
        assert_eq!(hm.get(root.path(), &mut errors).len(), 2);
        assert!(errors.is_empty(), "{errors:?}");

        let mut hm = HostMounts::new();
        assert!(hm.get(&root.path().join("nothing"), &mut errors).is_empty());
        assert_eq!(errors.len(), 1);
    }
}
