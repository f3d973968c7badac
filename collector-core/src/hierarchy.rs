//! Where the cgroup hierarchies are mounted, and which kind of setup the host runs.
//!
//! The mount table is the source of truth; statfs on `<sys_root>/fs/cgroup` is the fallback
//! when no mount table can be read (a bare `/sys` bind mount, say). Nothing assumes that cgroups
//! live at `/sys/fs/cgroup`: mount points are rebased onto the injected `sys_root`, so the
//! collector works inside a container with the host's `/sys` mounted at `/host/sys`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mountinfo::{self, MountEntry};

/// Where the host's `/proc` and `/sys` are visible to this process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roots {
    /// Where the host's `/proc` is visible to this process (default `/proc`).
    pub proc_root: PathBuf,
    /// Where the host's `/sys` is visible (default `/sys`); cgroup mount points are rebased
    /// onto it.
    pub sys_root: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
        }
    }
}

impl Roots {
    /// Both roots under one prefix (`/host` gives `/host/proc` and `/host/sys`).
    pub fn under(prefix: impl AsRef<Path>) -> Self {
        let p = prefix.as_ref();
        Roots {
            proc_root: p.join("proc"),
            sys_root: p.join("sys"),
        }
    }

    /// A path of the host's `/sys` as this process sees it.
    pub fn sys_path(&self, host_path: &str) -> PathBuf {
        match host_path.strip_prefix("/sys") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                self.sys_root.join(rest.trim_start_matches('/'))
            }
            _ => PathBuf::from(host_path),
        }
    }
}

/// The three ways a host can arrange its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setup {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 mount (systemd's `unified`), which holds PSI and `cpu.stat`.
    Hybrid,
    /// One cgroup2 hierarchy with the controllers.
    Unified,
}

/// The v1 controllers the collector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Controller {
    /// `cpu`: CFS quota, period, shares and throttling.
    Cpu,
    /// `cpuacct`: CPU usage, total, by mode and per CPU.
    Cpuacct,
    /// `cpuset`: the CPUs and memory nodes allowed.
    Cpuset,
    /// `memory`: usage, `memory.stat`, limits and OOM kills.
    Memory,
    /// `blkio`: block IO per device.
    Blkio,
    /// `pids`: task count and limit.
    Pids,
}

impl Controller {
    /// Every v1 controller the collector reads.
    pub const ALL: [Controller; 6] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Blkio,
        Controller::Pids,
    ];

    /// The controller's name as the kernel writes it in mount options and `/proc/<pid>/cgroup`.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Blkio => "blkio",
            Controller::Pids => "pids",
        }
    }

    /// Its place in `ALL`.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Where to read it from this process.
    pub path: PathBuf,
    /// The cgroup this mount shows at its top (`/` unless a subtree was bind mounted).
    pub root: String,
}

impl Mount {
    /// Whether a cgroup filesystem is mounted at `path` now: false once the hierarchy is
    /// unmounted (the directory may stay, empty) or where `path` is not the host's.
    pub fn is_cgroupfs(&self) -> bool {
        #[allow(clippy::unnecessary_cast)]
        nix::sys::statfs::statfs(&self.path).is_ok_and(|s| {
            matches!(
                s.filesystem_type().0 as i64,
                CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC
            )
        })
    }

    /// The directory of cgroup `id` (a hierarchy path such as `/docker/abc`), if it lies inside
    /// this mount.
    pub fn dir_of(&self, id: &str) -> Option<PathBuf> {
        let rel = if self.root == "/" {
            id
        } else {
            let rest = id.strip_prefix(self.root.as_str())?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            rest
        };
        Some(self.path.join(rel.trim_start_matches('/')))
    }

    /// The cgroup id of a directory inside this mount.
    pub fn id_of(&self, dir: &Path) -> Option<String> {
        let rel = dir.strip_prefix(&self.path).ok()?.to_str()?;
        let mut id = String::with_capacity(self.root.len() + rel.len() + 1);
        id.push_str(self.root.trim_end_matches('/'));
        id.push('/');
        id.push_str(rel);
        if id.len() > 1 && id.ends_with('/') {
            id.pop();
        }
        Some(id)
    }
}

/// The hierarchies found on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Which of v1, hybrid or v2 the host runs.
    pub setup: Setup,
    v1: [Option<Mount>; 6],
    /// The cgroup2 mount: the only hierarchy on `Unified`, the `unified` twin on `Hybrid`.
    pub unified: Option<Mount>,
}

const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

impl Hierarchy {
    /// Finds the hierarchies from the mount table under `roots`, falling back to statfs.
    pub fn detect(roots: &Roots) -> Result<Hierarchy> {
        let mut last_err = None;
        // PID 1's table shows the host's mounts even when this process runs in a container with
        // the host's /proc mounted; our own table is the fallback (and what fixture trees hold).
        for who in ["1", "self"] {
            let path = roots.proc_root.join(who).join("mountinfo");
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let (mounts, _) = mountinfo::parse(&text);
                    if let Some(h) = Self::from_mounts(&mounts, roots) {
                        return Ok(h);
                    }
                }
                Err(e) => last_err = Some(Error::read(&path, e)),
            }
        }
        Self::from_statfs(roots).ok_or_else(|| {
            Error::NoHierarchy(format!(
                "no cgroup mounts in {}/{{1,self}}/mountinfo and no cgroup filesystem under {}/fs/cgroup{}",
                roots.proc_root.display(),
                roots.sys_root.display(),
                last_err.map(|e| format!(" ({e})")).unwrap_or_default()
            ))
        })
    }

    /// Builds the picture from parsed mount rows. `None` when there is no cgroup mount.
    pub fn from_mounts(mounts: &[MountEntry], roots: &Roots) -> Option<Hierarchy> {
        let mut v1: [Option<Mount>; 6] = Default::default();
        let mut unified = None;
        for m in mounts {
            let mount = Mount {
                path: roots.sys_path(&m.mount_point),
                root: mount_root(&m.root),
            };
            match m.fs_type.as_str() {
                "cgroup" => {
                    for c in Controller::ALL {
                        let slot = &mut v1[c.index()];
                        // Prefer a mount of the whole hierarchy over a bind mount of a subtree.
                        if m.has_super_option(c.name())
                            && slot.as_ref().is_none_or(|s: &Mount| s.root != "/")
                        {
                            *slot = Some(mount.clone());
                        }
                    }
                }
                "cgroup2" if unified.as_ref().is_none_or(|s: &Mount| s.root != "/") => {
                    unified = Some(mount)
                }
                _ => {}
            }
        }
        Self::classify(v1, unified)
    }

    fn classify(v1: [Option<Mount>; 6], unified: Option<Mount>) -> Option<Hierarchy> {
        let any_v1 = v1.iter().any(Option::is_some);
        let setup = match (any_v1, unified.is_some()) {
            (false, false) => return None,
            (true, false) => Setup::Legacy,
            (true, true) => Setup::Hybrid,
            (false, true) => Setup::Unified,
        };
        Some(Hierarchy { setup, v1, unified })
    }

    /// Looks at `<sys_root>/fs/cgroup` by filesystem magic: cgroup2 there means unified;
    /// a tmpfs holds one directory per v1 hierarchy (named by its controllers) and maybe a
    /// cgroup2 `unified`.
    pub fn from_statfs(roots: &Roots) -> Option<Hierarchy> {
        let base = roots.sys_root.join("fs/cgroup");
        // f_type's width differs between architectures; the cast is a no-op on x86-64 only.
        #[allow(clippy::unnecessary_cast)]
        let magic = |p: &Path| {
            nix::sys::statfs::statfs(p)
                .ok()
                .map(|s| s.filesystem_type().0 as i64)
        };
        let whole = |p: PathBuf| Mount {
            path: p,
            root: "/".into(),
        };
        if magic(&base)? == CGROUP2_SUPER_MAGIC {
            return Self::classify(Default::default(), Some(whole(base)));
        }
        let mut v1: [Option<Mount>; 6] = Default::default();
        let mut unified = None;
        for entry in std::fs::read_dir(&base).ok()?.flatten() {
            let path = entry.path();
            // Symlinks such as `cpuacct -> cpu,cpuacct` are followed by statfs; the real
            // directory's name lists the controllers.
            if entry.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
                continue;
            }
            match magic(&path) {
                Some(CGROUP2_SUPER_MAGIC) => unified = Some(whole(path)),
                Some(CGROUP_SUPER_MAGIC) => {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    for c in Controller::ALL {
                        if name.split(',').any(|n| n == c.name()) {
                            v1[c.index()] = Some(whole(path.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        Self::classify(v1, unified)
    }

    /// The mount of a v1 controller (`None` on a unified host or when it is not mounted).
    pub fn v1(&self, c: Controller) -> Option<&Mount> {
        self.v1[c.index()].as_ref()
    }

    /// Every distinct mount to walk for discovery: each v1 hierarchy once (cpu and cpuacct
    /// are often co-mounted) and the cgroup2 one.
    pub fn mounts(&self) -> Vec<&Mount> {
        let mut out: Vec<&Mount> = Vec::new();
        for m in self.v1.iter().flatten().chain(self.unified.iter()) {
            if !out.iter().any(|o| o.path == m.path) {
                out.push(m);
            }
        }
        out
    }
}

/// A cgroup mount's root as the collector names cgroups. Read from inside a cgroup
/// namespace of its own, the kernel shows the root of a mount made outside it (the host's
/// `/sys/fs/cgroup`, bind mounted) relative to the namespace: `/../../..`, climbing from the
/// namespace's root to the hierarchy's top. Such a mount shows the whole hierarchy.
fn mount_root(shown: &str) -> String {
    if shown.starts_with("/..") && shown.split('/').all(|p| p.is_empty() || p == "..") {
        "/".into()
    } else {
        shown.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(sys: &str) -> Roots {
        Roots {
            proc_root: "/proc".into(),
            sys_root: sys.into(),
        }
    }

    #[test]
    fn hybrid_from_mount_table_rebased_on_sys_root() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
            35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
            40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let (m, _) = mountinfo::parse(text);
        let h = Hierarchy::from_mounts(&m, &roots("/host/sys")).unwrap();
        assert_eq!(h.setup, Setup::Hybrid);
        assert_eq!(
            h.v1(Controller::Cpuacct).unwrap().path,
            PathBuf::from("/host/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(h.v1(Controller::Cpu), h.v1(Controller::Cpuacct));
        assert!(h.v1(Controller::Blkio).is_none());
        assert_eq!(
            h.unified.as_ref().unwrap().path,
            PathBuf::from("/host/sys/fs/cgroup/unified")
        );
        // cpu,cpuacct counted once.
        assert_eq!(h.mounts().len(), 3);
    }

    /// Read from a cgroup namespace of its own, the host's hierarchy bind mounted in shows
    /// its root climbing out of the namespace; it is the whole hierarchy.
    #[test]
    fn a_mount_seen_from_a_cgroup_namespace_is_the_whole_hierarchy() {
        let text = "41 31 0:38 /../../.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let (m, _) = mountinfo::parse(text);
        let h = Hierarchy::from_mounts(&m, &roots("/host/sys")).unwrap();
        assert_eq!(h.unified.as_ref().map(|u| u.root.as_str()), Some("/"));
        assert_eq!(mount_root("/kubepods/x"), "/kubepods/x");
        assert_eq!(mount_root("/../x"), "/../x");
    }

    #[test]
    fn unified_and_legacy_and_none() {
        let (m, _) = mountinfo::parse("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        let h = Hierarchy::from_mounts(&m, &roots("/sys")).unwrap();
        assert_eq!(h.setup, Setup::Unified);
        let (m, _) =
            mountinfo::parse("32 31 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n");
        assert_eq!(
            Hierarchy::from_mounts(&m, &roots("/sys")).unwrap().setup,
            Setup::Legacy
        );
        let (m, _) = mountinfo::parse("22 27 0:21 / /proc rw - proc proc rw\n");
        assert!(Hierarchy::from_mounts(&m, &roots("/sys")).is_none());
    }

    #[test]
    fn mount_points_outside_sys_are_kept() {
        let (m, _) = mountinfo::parse("30 23 0:26 / /host/sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        let h = Hierarchy::from_mounts(&m, &roots("/host/sys")).unwrap();
        assert_eq!(
            h.unified.unwrap().path,
            PathBuf::from("/host/sys/fs/cgroup")
        );
    }

    #[test]
    fn subtree_mounts_map_ids() {
        let m = Mount {
            path: "/sys/fs/cgroup".into(),
            root: "/kubepods".into(),
        };
        assert_eq!(
            m.dir_of("/kubepods/pod1").unwrap(),
            PathBuf::from("/sys/fs/cgroup/pod1")
        );
        assert_eq!(m.dir_of("/kubepodsx"), None);
        assert_eq!(m.dir_of("/other"), None);
        assert_eq!(
            m.id_of(Path::new("/sys/fs/cgroup/pod1")).unwrap(),
            "/kubepods/pod1"
        );
        let whole = Mount {
            path: "/sys/fs/cgroup".into(),
            root: "/".into(),
        };
        assert_eq!(whole.id_of(Path::new("/sys/fs/cgroup")).unwrap(), "/");
        assert_eq!(
            whole.id_of(Path::new("/sys/fs/cgroup/a/b")).unwrap(),
            "/a/b"
        );
    }

    #[test]
    fn statfs_on_this_host_agrees_with_mount_table() {
        // Real kernel: whatever the setup is, both methods must see the same one.
        let r = Roots::default();
        if let (Some(a), Ok(b)) = (Hierarchy::from_statfs(&r), Hierarchy::detect(&r)) {
            assert_eq!(a.setup, b.setup);
        } else {
            panic!("no cgroup hierarchy visible on this host");
        }
    }
}
