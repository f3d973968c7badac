//! Keeping the list of followed cgroups current: a walk of the hierarchies when inotify saw a
//! change or a rescan is due, keeping the state of those found again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use super::tracked::{mark_leaves, parent_id, Tracked};
use super::{unix_ms, Collector, Snapshot};
use crate::dirs::{CgDirs, Slot, PREFERENCE};
use crate::discover::{self, Watcher};
use crate::events::EventKind;
use crate::hierarchy::{Hierarchy, Mount, Setup};
use crate::identity::{self, Kind};
use crate::specwatch::SpecWatch;

/// What inotify said since the last sweep.
struct Changes {
    /// A directory was made or removed in the watched hierarchy.
    seen: bool,
    /// The directories it saw removed.
    removed: HashSet<PathBuf>,
}

impl Collector {
    /// Rescans when inotify saw a change or the rescan interval passed.
    pub(super) fn refresh(&mut self, out: &mut Snapshot) {
        let Some(changes) = self.rescan_due() else {
            return;
        };
        let mounts: Vec<&Mount> = self.hierarchy.mounts();
        let filter = discover::prefix_filter(&self.config.include, &self.config.exclude);
        let watch_index = self.watched_mount(&mounts);
        let found = discover::walk(
            &mounts,
            self.watcher.as_mut(),
            watch_index,
            &filter,
            &mut out.errors,
        );
        let now_ms = unix_ms(SystemTime::now());

        // Keep the state of those still present, in the walk's (sorted) order.
        let mut old: HashMap<String, Tracked> =
            self.tracked.drain(..).map(|t| (t.id.clone(), t)).collect();
        // A cgroup is made in one hierarchy after another: one found in fewer than its parent
        // may have been caught half made, and inotify watches one hierarchy only. Walk again
        // at the next sweep.
        self.recheck = found.iter().any(|(id, &bits)| {
            !old.contains_key(id)
                && parent_id(id)
                    .and_then(|p| found.get(p))
                    .is_some_and(|&pb| pb & !bits != 0)
        });
        for (id, bits) in found {
            let dir_in = |slot: Slot| dir_in(&self.hierarchy, &mounts, &id, bits, slot);
            let (mut t, is_new) = match old.remove(&id) {
                Some(mut t) => {
                    // Held descriptors stay with the paths they were opened on.
                    if t.dirs.adopt(dir_in) {
                        t.files.clear();
                        t.forget_reads(self.spec_watch.as_mut());
                    }
                    (t, false)
                }
                None if self.config.runtime_only && !self.runtime_kind(&id) => continue,
                None => {
                    let dirs = CgDirs::new(dir_in);
                    let identity = identity::classify(&id, &self.config.containerd_namespaces);
                    let created = created_ms(dirs.birth_dir());
                    let mut t = Tracked::new(id, identity, dirs, now_ms, created);
                    t.signals.preexisting = !self.scanned_once;
                    (t, true)
                }
            };
            check_spec_watches(
                self.spec_watch.as_mut(),
                self.hierarchy.setup,
                &mut t,
                &changes,
            );
            // Announced once read and named (metadata is applied during the read).
            t.announce_start = is_new && self.scanned_once;
            self.tracked.push(t);
        }
        mark_leaves(&mut self.tracked);
        // Whatever the walk did not find again is gone; the machine's root does not stop (its
        // hierarchy went: `hierarchy_problem`).
        for (_, mut t) in old {
            t.unwatch(self.spec_watch.as_mut());
            if t.id != "/" {
                out.events
                    .push(t.event(EventKind::Stopped, out.timestamp_ms, 1));
            }
        }
        self.scanned_once = true;
        self.devices.retry_unknown();
    }

    /// What inotify saw, when a rescan is due: it saw a change, the rescan interval passed, or
    /// the last walk may have caught a cgroup half made.
    fn rescan_due(&mut self) -> Option<Changes> {
        let seen = self.watcher.as_mut().is_some_and(Watcher::poll);
        let removed = self
            .watcher
            .as_mut()
            .map(Watcher::take_removed)
            .unwrap_or_default();
        let every = match &self.watcher {
            Some(w) if !w.saturated() => self.config.watched_rescan_interval,
            _ => self.config.rescan_interval,
        };
        let due = self.last_scan.is_none_or(|t| t.elapsed() >= every);
        if !(seen || due || self.recheck) {
            return None;
        }
        self.last_scan = Some(Instant::now());
        Some(Changes { seen, removed })
    }

    /// Whether `id` is the machine, a runtime's container or a pod (`Config::runtime_only`).
    fn runtime_kind(&self, id: &str) -> bool {
        let kind = identity::classify(id, &self.config.containerd_namespaces).kind;
        matches!(kind, Kind::Root | Kind::Container | Kind::Pod)
    }

    /// The hierarchy inotify watches: cgroup2 on unified hosts, else the first mounted v1
    /// controller in `PREFERENCE` order.
    fn watched_mount(&self, mounts: &[&Mount]) -> usize {
        let h = &self.hierarchy;
        let pick = if h.setup == Setup::Unified {
            h.unified.as_ref()
        } else {
            PREFERENCE.into_iter().find_map(|c| h.v1(c))
        };
        pick.and_then(|m| mounts.iter().position(|x| x.path == m.path))
            .unwrap_or(0)
    }
}

/// A cgroup directory's ctime: set when it is made (cgroupfs files are not renamed or chmod-ed
/// by runtimes), so it stands for the container's start as cAdvisor takes it.
fn created_ms(dir: Option<&Path>) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir?).ok()?;
    let ms = m.ctime().checked_mul(1000)? + m.ctime_nsec() / 1_000_000;
    u64::try_from(ms).ok()
}

/// The directory of cgroup `id` in a slot's hierarchy, when the walk found it there (`bits`:
/// the mounts it was found in).
fn dir_in(h: &Hierarchy, mounts: &[&Mount], id: &str, bits: u32, slot: Slot) -> Option<PathBuf> {
    let m = match slot {
        Slot::V1(c) => h.v1(c),
        Slot::Unified => h.unified.as_ref(),
    }?;
    let i = mounts.iter().position(|x| x.path == m.path)?;
    (bits & (1 << i.min(31)) != 0)
        .then(|| m.dir_of(id))
        .flatten()
}

/// A container's directories removed and perhaps made again under the same name: its watches
/// are checked (new directories give new ones). Every container's on a periodic rescan, where
/// inotify may not have said (about 3 us a watch, so not on every event's).
fn check_spec_watches(
    spec_watch: Option<&mut SpecWatch>,
    setup: Setup,
    t: &mut Tracked,
    changes: &Changes,
) {
    let suspect = !changes.seen || t.dirs.spec_dirs(setup).any(|d| changes.removed.contains(d));
    let (true, Some(w), Some(old)) = (suspect, spec_watch, t.spec.watches) else {
        return;
    };
    // The old watches are dead, and what was read through them is stale.
    let new = w.watch(t.dirs.spec_dirs(setup));
    if new != Some(old) {
        let keep = new.unwrap_or_default();
        let dead = old.map(|wd| wd.filter(|wd| !keep.contains(&Some(*wd))));
        w.unwatch(&dead);
        t.spec.watches = new;
        t.spec.read_at = None;
        t.activity.full.forget();
    }
}
