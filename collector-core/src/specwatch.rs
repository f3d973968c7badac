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

    /// Watches `dirs` (at most four) for writes. `None` when any could not be watched: that
    /// container's spec is then read on the timer.
    pub fn watch<'a>(&mut self, dirs: impl IntoIterator<Item = &'a Path>) -> Option<Watches> {
        let mut out: Watches = [None; 4];
        for (slot, dir) in out.iter_mut().zip(dirs) {
            if self.full {
                return None;
            }
            if self.known.len() >= self.limit {
                tracing::warn!(
                    watches = self.known.len(),
                    "configured inotify watch limit reached: specs of containers beyond it are read again on the spec interval"
                );
                self.full = true;
                return None;
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
                    return None;
                }
                // Vanished meanwhile, or not watchable: the timer covers it.
                Err(_) => return None,
            }
        }
        Some(out)
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
                    // The directory is gone and the kernel dropped its watch.
                    self.known.remove(&ev.wd);
                    self.full = false;
                } else {
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

    #[cfg(test)]
    pub fn watches(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write to a file in a watched directory names its watch; a read does not; a removed
    /// directory's watch is dropped; the limit is kept.
    #[test]
    fn writes_name_their_watch_and_reads_do_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tmp = dir.path();
        let (a, b, d) = (tmp.join("a"), tmp.join("b"), tmp.join("d"));
        for x in [&a, &b, &d] {
            std::fs::create_dir_all(x).expect("mkdir");
            std::fs::write(x.join("limit"), "1").expect("write");
        }
        let mut w = SpecWatch::new(3).expect("inotify");
        let wa = w.watch([a.as_path()]).expect("watched");
        let wb = w.watch([b.as_path()]).expect("watched");
        assert!(w.watch([tmp.join("missing").as_path()]).is_none());
        assert!(w.watch([d.as_path(), tmp]).is_none(), "past the limit of 3");
        assert_eq!(w.poll(), Written::None);

        std::fs::read_to_string(a.join("limit")).expect("read");
        assert_eq!(w.poll(), Written::None, "reads are not writes");
        std::fs::write(a.join("limit"), "2").expect("write");
        let seen = w.poll();
        assert!(seen.any_of(&wa));
        assert!(!seen.any_of(&wb));
        assert_eq!(w.poll(), Written::None, "drained");
        assert!(Written::All.any_of(&wb));

        std::fs::remove_dir_all(&b).expect("rm");
        assert!(!w.poll().any_of(&wb));
        assert_eq!(w.watches(), 2, "the removed directory's watch is gone");
    }
}
