//! Noticing writes to a container's control files, so that its spec (limits, shares, cpusets)
//! is read again at the next sweep rather than on a timer.
//!
//! Every successful `write(2)` makes the VFS send `IN_MODIFY` to watchers of the file's
//! directory, cgroupfs included; our own reads send nothing we ask for. A runtime changing a
//! limit (`docker update`, a kubelet resize, systemd) writes the file, so a watch on each
//! directory a spec is read from sees it. What no write announces is covered by the backstop
//! interval (`Config::watched_spec_interval`): a v1 child's `cpuset.cpus` trimmed by the kernel
//! when its parent's shrinks, CPU hotplug. A queue overflow marks every spec written.
//!
//! The watches are an inotify instance of their own, apart from discovery's (which watches one
//! hierarchy for directories made and removed). A watch costs the kernel a mark on the
//! directory's inode (91 bytes of slab, `benches/kmem/held-fds.py`), and no descriptor.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// Watches on the directories specs are read from, each for one container id.
pub struct SpecWatch {
    fd: Inotify,
    by_wd: HashMap<WatchDescriptor, String>,
    /// The kernel's watch limit, or ours, was hit: containers not watched fall back to the
    /// timer.
    full: bool,
    /// Our own cap on watches (`Config::watch_limit`), apart from discovery's.
    limit: usize,
}

impl std::fmt::Debug for SpecWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecWatch")
            .field("watches", &self.by_wd.len())
            .field("full", &self.full)
            .finish()
    }
}

/// What a poll found.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Written {
    /// No write seen.
    #[default]
    None,
    /// Writes in the directories of these containers.
    Some(HashSet<String>),
    /// Events were lost: any spec may have changed.
    All,
}

impl SpecWatch {
    pub fn new(limit: usize) -> std::io::Result<Self> {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(SpecWatch {
            fd,
            by_wd: HashMap::new(),
            full: false,
            limit,
        })
    }

    /// Watches `dirs` for writes on behalf of container `id`. False when any could not be
    /// watched: that container's spec is then read on the timer.
    pub fn watch<'a>(&mut self, id: &str, dirs: impl IntoIterator<Item = &'a Path>) -> bool {
        let mut all = true;
        for dir in dirs {
            if self.full {
                return false;
            }
            if self.by_wd.len() >= self.limit {
                tracing::warn!(
                    watches = self.by_wd.len(),
                    "configured inotify watch limit reached: specs of containers beyond it are read again on the spec interval"
                );
                self.full = true;
                return false;
            }
            match self
                .fd
                .add_watch(dir, AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_ONLYDIR)
            {
                Ok(wd) => {
                    // The same directory again (a rescan) gives the same descriptor.
                    if self.by_wd.get(&wd).is_none_or(|known| known != id) {
                        self.by_wd.insert(wd, id.to_string());
                    }
                }
                Err(Errno::ENOSPC) => {
                    tracing::warn!(
                        watches = self.by_wd.len(),
                        "inotify watch limit reached: specs of containers beyond it are read again on the spec interval"
                    );
                    self.full = true;
                    all = false;
                }
                // Vanished meanwhile, or not watchable: the timer covers it.
                Err(_) => all = false,
            }
        }
        all
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
                    continue;
                }
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The directory is gone and the kernel dropped its watch.
                    self.by_wd.remove(&ev.wd);
                    self.full = false;
                    continue;
                }
                let Some(id) = self.by_wd.get(&ev.wd) else {
                    continue;
                };
                match &mut out {
                    Written::All => {}
                    Written::Some(ids) => {
                        ids.insert(id.clone());
                    }
                    Written::None => out = Written::Some(HashSet::from([id.clone()])),
                }
            }
        }
        out
    }

    #[cfg(test)]
    pub fn watches(&self) -> usize {
        self.by_wd.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write to a file in a watched directory names its container; a read does not; a
    /// removed directory's watch is dropped.
    #[test]
    fn writes_name_their_container_and_reads_do_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tmp = dir.path();
        let (a, b) = (tmp.join("a"), tmp.join("b"));
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(&b).expect("mkdir");
        std::fs::write(a.join("limit"), "1").expect("write");
        std::fs::write(b.join("limit"), "1").expect("write");
        let mut w = SpecWatch::new(3).expect("inotify");
        assert!(w.watch("/a", [a.as_path()]));
        assert!(w.watch("/b", [b.as_path()]));
        assert!(!w.watch("/c", [tmp.join("missing").as_path()]));
        let d = tmp.join("d");
        std::fs::create_dir_all(&d).expect("mkdir");
        assert!(!w.watch("/d", [d.as_path(), tmp]), "past the limit of 3");
        assert_eq!(w.poll(), Written::None);

        std::fs::read_to_string(a.join("limit")).expect("read");
        assert_eq!(w.poll(), Written::None, "reads are not writes");
        std::fs::write(a.join("limit"), "2").expect("write");
        assert_eq!(w.poll(), Written::Some(HashSet::from(["/a".to_string()])));
        assert_eq!(w.poll(), Written::None, "drained");

        std::fs::remove_dir_all(&b).expect("rm");
        assert_eq!(w.poll(), Written::None);
        assert_eq!(w.watches(), 2, "the removed directory's watch is gone");
    }
}
