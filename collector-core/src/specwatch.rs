//! Noticing writes to a container's control files, so that its spec (limits, shares, cpusets)
//! is read again at the next sweep rather than on a timer.
//!
//! Every successful `write(2)` makes the VFS send `IN_MODIFY` to watchers of the file's
//! directory, cgroupfs included; our own reads send nothing we ask for. A runtime changing a
//! limit (`docker update`, a kubelet resize, systemd) writes the file, so a watch on each
//! directory a spec is read from sees it. What no write announces is covered by the backstop
//! interval (`Config::watched_spec_interval`): a v1 child's `cpuset.cpus` trimmed by the kernel
//! when its parent's shrinks, CPU hotplug. A queue overflow marks every spec written. On cgroup
//! v2 the kernel's own notifications on a file (`memory.events`, `cgroup.events`,
//! `pids.events`) reach the same watch: they mean activity (a limit hit, a task gone), so the
//! full read and spec read they bring are wanted.
//!
//! The watches are an inotify instance of their own, apart from discovery's (which watches one
//! hierarchy for directories made and removed). A watch costs the kernel a mark on the
//! directory's inode (91 bytes of slab, `benches/kmem/held-fds.py`), and no descriptor.

use std::collections::HashSet;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// The watches of one container: one per directory its spec is read from (at most four, a
/// hybrid host's cpu, cpuset, memory and pids). Kept by the container, so the watcher needs
/// no map back to it.
pub type Watches = [Option<WatchDescriptor>; 4];

/// Watches on the directories specs are read from.
pub struct SpecWatch {
    fd: Inotify,
    known: HashSet<WatchDescriptor>,
    /// The kernel's watch limit, or ours, was hit: containers not watched fall back to the
    /// timer.
    full: bool,
    /// Our own cap on watches (`Config::watch_limit`), apart from discovery's.
    limit: usize,
}

impl std::fmt::Debug for SpecWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecWatch")
            .field("watches", &self.known.len())
            .field("full", &self.full)
            .finish()
    }
}

/// Files whose writes count: the spec files of v1 and v2, and those whose write changes a
/// figure no probe shows (max usage resets, `force_empty`). Task moves (`cgroup.procs`) show in
/// the probe; the kernel's own notifications on v2 (`memory.events`, `cgroup.events`) come
/// with activity the probe shows too, and are many under memory pressure.
const COUNTED: &[&str] = &[
    "cpu.shares",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.max",
    "cpu.weight",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.max",
    "memory.high",
    "memory.low",
    "memory.swap.max",
    "pids.max",
    "memory.max_usage_in_bytes",
    "memory.memsw.max_usage_in_bytes",
    "memory.kmem.max_usage_in_bytes",
    "memory.force_empty",
    "memory.peak",
    "memory.swap.peak",
];

fn counts(name: &str) -> bool {
    COUNTED.contains(&name)
}

/// What a poll found.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Written {
    /// No write seen.
    #[default]
    None,
    /// Writes under these watches.
    Some(HashSet<WatchDescriptor>),
    /// Events were lost: any spec may have changed.
    All,
}

impl Written {
    /// Whether a container with these watches was written to.
    pub fn any_of(&self, w: &Watches) -> bool {
        match self {
            Written::None => false,
            Written::All => true,
            Written::Some(set) => w.iter().flatten().any(|wd| set.contains(wd)),
        }
    }
}

impl SpecWatch {
    pub fn new(limit: usize) -> std::io::Result<Self> {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(SpecWatch {
            fd,
            known: HashSet::new(),
            full: false,
            limit,
        })
    }

    /// Watches `dirs` (at most four) for writes. `None` when any could not be watched (those
    /// that were are let go): that container's spec is then read on the timer. The same
    /// directory again gives the same descriptors; one made again under its name, others.
    pub fn watch<'a>(&mut self, dirs: impl IntoIterator<Item = &'a Path>) -> Option<Watches> {
        let mut out: Watches = [None; 4];
        let ok = self.add_all(&mut out, dirs);
        if !ok {
            self.unwatch(&out);
            return None;
        }
        Some(out)
    }

    /// Lets go of watches (a container gone, or its directories made again). cgroupfs sends
    /// no `IN_IGNORED` when a directory is removed: without this the watches, and the removed
    /// directories they pin, would stay as long as the instance.
    pub fn unwatch(&mut self, w: &Watches) {
        for wd in w.iter().flatten() {
            if self.known.remove(wd) {
                let _ = self.fd.rm_watch(*wd);
                self.full = false;
            }
        }
    }

    fn add_all<'a>(&mut self, out: &mut Watches, dirs: impl IntoIterator<Item = &'a Path>) -> bool {
        for (slot, dir) in out.iter_mut().zip(dirs) {
            if self.full {
                return false;
            }
            if self.known.len() >= self.limit {
                tracing::warn!(
                    watches = self.known.len(),
                    "configured inotify watch limit reached: specs of containers beyond it are read again on the spec interval"
                );
                self.full = true;
                return false;
            }
            match self
                .fd
                .add_watch(dir, AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_ONLYDIR)
            {
                // The same directory again gives the same descriptor.
                Ok(wd) => {
                    self.known.insert(wd);
                    *slot = Some(wd);
                }
                Err(Errno::ENOSPC) => {
                    tracing::warn!(
                        watches = self.known.len(),
                        "inotify watch limit reached: specs of containers beyond it are read again on the spec interval"
                    );
                    self.full = true;
                    return false;
                }
                // Vanished meanwhile, or not watchable: the timer covers it.
                Err(_) => return false,
            }
        }
        true
    }

    /// Drains pending events.
    pub fn poll(&mut self) -> Written {
        let mut out = Written::None;
        while let Ok(events) = self.fd.read_events() {
            if events.is_empty() {
                break;
            }
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    out = Written::All;
                } else if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The kernel dropped the watch (`unwatch`, or a file system that says so).
                    self.known.remove(&ev.wd);
                    self.full = false;
                } else if ev
                    .name
                    .as_deref()
                    .and_then(|n| n.to_str())
                    .is_some_and(counts)
                {
                    match &mut out {
                        Written::All => {}
                        Written::Some(wds) => {
                            wds.insert(ev.wd);
                        }
                        Written::None => out = Written::Some(HashSet::from([ev.wd])),
                    }
                }
            }
        }
        out
    }

    /// Directories watched now.
    pub fn watches(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write to a spec file in a watched directory names its watch; a read does not, nor a
    /// write to another file; watches let go are gone; the limit is kept.
    #[test]
    fn writes_name_their_watch_and_reads_do_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tmp = dir.path();
        let (a, b, d) = (tmp.join("a"), tmp.join("b"), tmp.join("d"));
        for x in [&a, &b, &d] {
            std::fs::create_dir_all(x).expect("mkdir");
            std::fs::write(x.join("memory.max"), "1").expect("write");
        }
        let mut w = SpecWatch::new(3).expect("inotify");
        let wa = w.watch([a.as_path()]).expect("watched");
        let wb = w.watch([b.as_path()]).expect("watched");
        assert!(w.watch([tmp.join("missing").as_path()]).is_none());
        assert!(w.watch([d.as_path(), tmp]).is_none(), "past the limit of 3");
        assert_eq!(w.watches(), 2, "the failed container's first watch let go");
        assert_eq!(w.poll(), Written::None);

        std::fs::read_to_string(a.join("memory.max")).expect("read");
        std::fs::write(a.join("cgroup.procs"), "1").expect("write");
        assert_eq!(
            w.poll(),
            Written::None,
            "reads and other files do not count"
        );
        std::fs::write(a.join("memory.max"), "2").expect("write");
        let seen = w.poll();
        assert!(seen.any_of(&wa));
        assert!(!seen.any_of(&wb));
        assert_eq!(w.poll(), Written::None, "drained");
        assert!(Written::All.any_of(&wb));

        w.unwatch(&wb);
        assert_eq!(w.watches(), 1);
        std::fs::write(b.join("memory.max"), "2").expect("write");
        assert_eq!(w.poll(), Written::None, "let go");
        assert!(w.watch([d.as_path()]).is_some(), "room again");
    }
}
