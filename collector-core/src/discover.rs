//! Finding cgroups: a full walk of every hierarchy, driven by inotify and backed by a
//! periodic rescan.
//!
//! inotify reports directories made and removed under the directories it watches; any event
//! marks the tree dirty and the next sweep walks it again (a walk is cheap next to reading the
//! stats). Only one hierarchy is watched (the cgroup2 one on unified hosts, the memory one
//! otherwise): runtimes and systemd make a container's cgroup in every hierarchy at once, so one
//! is enough, and it keeps watches at one per cgroup. When the watch limit (ours, or the
//! kernel's `fs.inotify.max_user_watches`) is reached, the directories past it go unwatched:
//! their changes are seen at the next periodic rescan, which runs regardless. Nothing is
//! missed, only seen later; `Watcher::saturated` says so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::error::{is_vanished, Error};
use crate::hierarchy::Mount;

/// Cgroup ids found in a walk, each with a bit per mount (index in the walked list) it is in.
pub type Found = BTreeMap<String, u32>;

/// Walks every mount; `filter` keeps an id or drops it (with its subtree when it says so).
/// The watcher, if any, is given the directories of mount `watch_index` only.
pub fn walk(
    mounts: &[&Mount],
    mut watcher: Option<&mut Watcher>,
    watch_index: usize,
    filter: &dyn Fn(&str) -> Filter,
    errors: &mut Vec<Error>,
) -> Found {
    let mut found = Found::new();
    for (i, m) in mounts.iter().enumerate() {
        let bit = 1u32 << i.min(31);
        // A mount whose own directory is gone (the hierarchy unmounted, a wrong sysfs root)
        // holds no cgroup, not even the root.
        if !m.path.is_dir() {
            continue;
        }
        let mut stack = vec![m.path.clone()];
        while let Some(dir) = stack.pop() {
            let Some(id) = m.id_of(&dir) else { continue };
            match filter(&id) {
                Filter::Prune => continue,
                Filter::Keep => *found.entry(id).or_insert(0) |= bit,
                Filter::Descend => {}
            }
            if let Some(w) = watcher.as_deref_mut().filter(|_| i == watch_index) {
                w.watch(&dir);
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if is_vanished(&e) => continue,
                Err(e) => {
                    errors.push(Error::read(&dir, e));
                    continue;
                }
            };
            for entry in entries.flatten() {
                // file_type from readdir needs no extra stat on cgroupfs.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
    found
}

/// What to do with a cgroup on the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Report it and look inside.
    Keep,
    /// Do not report it, but look inside (a parent of an included prefix).
    Descend,
    /// Neither (an excluded subtree).
    Prune,
}

/// Include and exclude prefixes, matched on whole path components (`/docker` matches
/// `/docker/abc`, not `/dockerd`). An empty include list means everything.
pub fn prefix_filter<'a>(
    include: &'a [String],
    exclude: &'a [String],
) -> impl Fn(&str) -> Filter + 'a {
    move |id: &str| {
        if exclude.iter().any(|p| under(id, p)) {
            return Filter::Prune;
        }
        if include.is_empty() || include.iter().any(|p| under(id, p)) {
            return Filter::Keep;
        }
        if include.iter().any(|p| under(p, id)) {
            return Filter::Descend;
        }
        Filter::Prune
    }
}

/// Whether `id` is `prefix` or lies below it.
pub fn under(id: &str, prefix: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        return true;
    }
    id.strip_prefix(p)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// inotify watches on cgroup directories.
pub struct Watcher {
    fd: Inotify,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    watched: HashMap<PathBuf, WatchDescriptor>,
    /// Directories reported removed since `take_removed`.
    removed: HashSet<PathBuf>,
    saturated: bool,
    /// Our own cap on watches, below the kernel's (each watch costs kernel memory).
    limit: usize,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("watches", &self.watched.len())
            .field("saturated", &self.saturated)
            .finish()
    }
}

impl Watcher {
    /// `limit` caps the watches this watcher adds; the kernel's own limit applies as well.
    pub fn new(limit: usize) -> std::io::Result<Self> {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(Watcher {
            fd,
            by_wd: HashMap::new(),
            watched: HashMap::new(),
            removed: HashSet::new(),
            saturated: false,
            limit,
        })
    }

    fn watch(&mut self, dir: &Path) {
        if self.saturated || self.watched.contains_key(dir) {
            return;
        }
        if self.watched.len() >= self.limit {
            tracing::warn!(
                watches = self.watched.len(),
                "configured inotify watch limit reached; cgroups beyond it are found by the periodic rescan"
            );
            self.saturated = true;
            return;
        }
        let flags = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_ONLYDIR;
        match self.fd.add_watch(dir, flags) {
            Ok(wd) => {
                self.by_wd.insert(wd, dir.to_path_buf());
                self.watched.insert(dir.to_path_buf(), wd);
            }
            Err(nix::errno::Errno::ENOSPC) => {
                tracing::warn!(
                    watches = self.watched.len(),
                    "inotify watch limit reached; cgroups beyond it are found by the periodic rescan"
                );
                self.saturated = true;
            }
            // Vanished while walking, or not watchable: the rescan covers it.
            Err(_) => {}
        }
    }

    /// Drains pending events. True when a cgroup directory was made or removed.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        while let Ok(events) = self.fd.read_events() {
            if events.is_empty() {
                break;
            }
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The kernel dropped the watch.
                    if let Some(p) = self.by_wd.remove(&ev.wd) {
                        self.watched.remove(&p);
                    }
                    self.saturated = false;
                }
                let gone = AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM;
                if ev.mask.contains(AddWatchFlags::IN_ISDIR) && ev.mask.intersects(gone) {
                    // cgroupfs sends no IN_IGNORED for a removed directory: its watch would
                    // stay, pinning it, and one made again under the name would go unwatched.
                    let child = ev
                        .name
                        .as_ref()
                        .and_then(|n| Some(self.by_wd.get(&ev.wd)?.join(n)));
                    if let Some(c) = child {
                        if let Some(wd) = self.watched.remove(&c) {
                            self.by_wd.remove(&wd);
                            let _ = self.fd.rm_watch(wd);
                            self.saturated = false;
                        }
                        self.removed.insert(c);
                    }
                }
                if ev.mask.contains(AddWatchFlags::IN_ISDIR)
                    || ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                {
                    changed = true;
                }
            }
        }
        changed
    }

    /// The directories reported removed since the last call (one may have been made again
    /// under its name since).
    pub fn take_removed(&mut self) -> HashSet<PathBuf> {
        std::mem::take(&mut self.removed)
    }

    /// True once the watch limit was hit.
    pub fn saturated(&self) -> bool {
        self.saturated
    }

    /// Watches held now.
    pub fn watches(&self) -> usize {
        self.watched.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_components() {
        assert!(under("/docker/abc", "/docker"));
        assert!(under("/docker", "/docker/"));
        assert!(!under("/dockerd", "/docker"));
        assert!(under("/anything", "/"));
        let inc = vec!["/kubepods/burstable".to_string()];
        let exc = vec!["/kubepods/burstable/skip".to_string()];
        let f = prefix_filter(&inc, &exc);
        assert_eq!(f("/"), Filter::Descend);
        assert_eq!(f("/kubepods"), Filter::Descend);
        assert_eq!(f("/kubepods/burstable/pod1"), Filter::Keep);
        assert_eq!(f("/kubepods/burstable/skip/x"), Filter::Prune);
        assert_eq!(f("/system.slice"), Filter::Prune);
        let all = prefix_filter(&[], &[]);
        assert_eq!(all("/x"), Filter::Keep);
    }
}
