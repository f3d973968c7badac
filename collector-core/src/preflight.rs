//! What the configured roots hold, checked once before anything is read. A root that exists
//! but is not what it should be (a volume forgotten in a DaemonSet, a typo) otherwise gives
//! empty figures with no error anywhere: no container, no network, no process.
//!
//! Each check says what it found and what it expected, without naming any flag; the caller
//! knows which of its settings gave the path.

use std::path::{Path, PathBuf};

use crate::hierarchy::{Hierarchy, Roots};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// How a root fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It holds what it should (what was seen).
    Ok(String),
    /// Some of it: part of the figures will be missing (what).
    Partial(String),
    /// Nothing useful can be read through it (what was found, what was expected).
    Fatal(String),
    /// Not checked: what it serves is off, or nothing could tell (why).
    Unknown(String),
}

impl Verdict {
    /// `ok`, `partial`, `fatal` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Ok(_) => "ok",
            Verdict::Partial(_) => "partial",
            Verdict::Fatal(_) => "fatal",
            Verdict::Unknown(_) => "unknown",
        }
    }

    /// What was seen, found or missing, for a log line or `check`'s table.
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Ok(s) | Verdict::Partial(s) | Verdict::Fatal(s) | Verdict::Unknown(s) => s,
        }
    }

    /// Ok, or not checked: nothing to warn about.
    pub fn fine(&self) -> bool {
        matches!(self, Verdict::Ok(_) | Verdict::Unknown(_))
    }
}

/// The three roots' verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// The proc filesystem (`Roots::proc_root`).
    pub procfs: Verdict,
    /// The cgroup mounts under `Roots::sys_root`.
    pub sysfs: Verdict,
    /// The host's `/` for writable layers (`Unknown` when layers are off).
    pub rootfs: Verdict,
}

impl Preflight {
    /// Checks `roots` and the hierarchy found through them; `rootfs` only when writable
    /// layers are read.
    pub fn run(roots: &Roots, hierarchy: &Hierarchy, rootfs: Option<&Path>) -> Preflight {
        Preflight {
            procfs: procfs(&roots.proc_root),
            sysfs: sysfs(hierarchy),
            rootfs: match rootfs {
                Some(r) => self::rootfs(&roots.proc_root, r),
                None => Verdict::Unknown("writable layers are not read".into()),
            },
        }
    }
}

/// A proc filesystem of the host's PID namespace: the proc magic, PID 1, and kernel threads
/// (`kthreadd` is PID 2 in the initial namespace and in no other).
pub fn procfs(root: &Path) -> Verdict {
    match magic(root) {
        Ok(PROC_SUPER_MAGIC) => {}
        Ok(m) => {
            return Verdict::Fatal(format!(
                "{} is not a proc filesystem but {} (expected the host's /proc)",
                root.display(),
                fs_name(m)
            ))
        }
        Err(e) => return Verdict::Fatal(format!("{}: {e}", root.display())),
    }
    if !root.join("1/stat").exists() {
        return Verdict::Fatal(format!(
            "{} is a proc filesystem showing no PID 1 (expected the host's /proc)",
            root.display()
        ));
    }
    match std::fs::read_to_string(root.join("2/stat")) {
        Ok(s) if s.contains("(kthreadd)") => {
            Verdict::Ok(format!("{}: the host's processes", root.display()))
        }
        _ => Verdict::Partial(format!(
            "{} shows no kernel threads: the proc filesystem of a PID namespace other than the \
             host's, whose processes are not the containers' (expected the host's /proc)",
            root.display()
        )),
    }
}

/// The cgroup mounts the mount table names, each a cgroup filesystem where it is looked for.
pub fn sysfs(h: &Hierarchy) -> Verdict {
    let mounts = h.mounts();
    let missing: Vec<(PathBuf, String)> = mounts
        .iter()
        .filter_map(|m| match magic(&m.path) {
            Ok(CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC) => None,
            Ok(other) => Some((m.path.clone(), format!("{}, not cgroup", fs_name(other)))),
            Err(e) => Some((m.path.clone(), e.to_string())),
        })
        .collect();
    let Some((first, why)) = missing.first() else {
        return Verdict::Ok(format!("{} cgroup mounts ({:?})", mounts.len(), h.setup));
    };
    if missing.len() == mounts.len() {
        return Verdict::Fatal(format!(
            "none of the {} cgroup mounts the mount table names is there ({}: {why}); expected \
             the host's /sys with its cgroup mounts",
            mounts.len(),
            first.display()
        ));
    }
    let paths: Vec<String> = missing
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    Verdict::Partial(format!(
        "{} of {} cgroup mounts missing ({}: {why}): their controllers' figures will be absent",
        missing.len(),
        mounts.len(),
        paths.join(", ")
    ))
}

/// The host's `/`: the same directory as PID 1's root where that can be seen (it takes
/// ptrace rights), else a root (`etc`, `usr`) on the same device as the `/` of PID 1's mount
/// table (readable without them), else holding a container runtime's state directory. Devices that differ
/// prove nothing (a btrfs subvolume's files show another device than its mount): the state
/// directories decide then.
pub fn rootfs(proc_root: &Path, rootfs: &Path) -> Verdict {
    use std::os::unix::fs::MetadataExt;
    let given = match std::fs::metadata(rootfs) {
        Ok(m) => m,
        Err(e) => return Verdict::Partial(format!("{}: {e}", rootfs.display())),
    };
    if let Ok(init) = std::fs::metadata(proc_root.join("1/root")) {
        return if (init.dev(), init.ino()) == (given.dev(), given.ino()) {
            Verdict::Ok(format!("{}: PID 1's root", rootfs.display()))
        } else {
            Verdict::Partial(format!(
                "{} is not the host's / (PID 1's root is another directory): writable layers \
                 will not be found",
                rootfs.display()
            ))
        };
    }
    if let Some((major, minor)) = root_device(proc_root) {
        let dev = given.dev();
        // Any directory of the root filesystem is on that device: a root also has these.
        let looks_like_root = ["etc", "usr"].iter().all(|d| rootfs.join(d).is_dir());
        if looks_like_root && (libc::major(dev), libc::minor(dev)) == (major, minor) {
            return Verdict::Ok(format!(
                "{}: on PID 1's root filesystem ({major}:{minor})",
                rootfs.display()
            ));
        }
    }
    const STATE: [&str; 4] = [
        "var/lib/docker",
        "var/lib/containerd",
        "var/lib/containers",
        "run/containerd",
    ];
    match STATE.iter().find(|d| rootfs.join(d).is_dir()) {
        Some(d) => Verdict::Ok(format!("{} holds /{d}", rootfs.display())),
        None => Verdict::Partial(format!(
            "{} holds none of /var/lib/docker, /var/lib/containerd, /var/lib/containers: not \
             the host's / or a host without a runtime; writable layers will not be found",
            rootfs.display()
        )),
    }
}

/// The device of `/` in PID 1's mount table (the last mount there, which hides the others).
fn root_device(proc_root: &Path) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(proc_root.join("1/mountinfo")).ok()?;
    let (mounts, _) = crate::mountinfo::parse(&text);
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == "/")
        .map(|m| (m.major, m.minor))
}

fn magic(p: &Path) -> std::io::Result<i64> {
    #[allow(clippy::unnecessary_cast)]
    nix::sys::statfs::statfs(p)
        .map(|s| s.filesystem_type().0 as i64)
        .map_err(std::io::Error::from)
}

/// A filesystem type's name, for the messages.
fn fs_name(magic: i64) -> String {
    let name = match magic {
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794c_7630 => "overlay",
        0x6265_6572 => "sysfs",
        PROC_SUPER_MAGIC => "proc",
        CGROUP_SUPER_MAGIC => "cgroup",
        CGROUP2_SUPER_MAGIC => "cgroup2",
        _ => return format!("0x{magic:x}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_directory_is_no_proc_filesystem() {
        let d = tempfile::tempdir().expect("temp dir");
        let v = procfs(d.path());
        assert_eq!(v.name(), "fatal", "{v:?}");
        assert!(v.detail().contains("not a proc filesystem"), "{v:?}");
        assert_eq!(procfs(Path::new("/proc")).name(), "ok");
    }

    #[test]
    fn a_hierarchy_whose_mounts_are_elsewhere_is_fatal() {
        let d = tempfile::tempdir().expect("temp dir");
        let real = Hierarchy::detect(&Roots::default()).expect("this host's cgroups");
        assert_eq!(sysfs(&real).name(), "ok");
        let roots = Roots {
            proc_root: "/proc".into(),
            sys_root: d.path().to_path_buf(),
        };
        let wrong = Hierarchy::detect(&roots).expect("the mount table names mounts");
        let v = sysfs(&wrong);
        assert_eq!(v.name(), "fatal", "{v:?}");
        assert!(
            v.detail().contains(&d.path().display().to_string()),
            "{v:?}"
        );
    }

    /// A directory of the root filesystem is on the root's device, but it is no root.
    #[test]
    fn a_directory_without_a_runtime_is_no_host_root() {
        let d = tempfile::tempdir().expect("temp dir");
        assert_eq!(rootfs(Path::new("/proc"), d.path()).name(), "partial");
        let v = rootfs(Path::new("/proc"), Path::new("/"));
        assert_eq!(v.name(), "ok", "{v:?}");
    }
}
