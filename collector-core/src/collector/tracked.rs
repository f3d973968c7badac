//! A cgroup followed between sweeps: what it is, where it is read from, and what the sweeps
//! before this one left for it.

use std::time::Instant;

use crate::dirs::CgDirs;
use crate::events::{Event, EventKind};
use crate::identity::Identity;
use crate::idle::FullRead;
use crate::metadata::Metadata;
use crate::network::ProcHandle;
use crate::read::FileCache;
use crate::specwatch::{SpecWatch, Watches};
use crate::stats::{ContainerStats, LoadStats, ProcessStats, SocketStats, Spec};

#[derive(Debug)]
pub(super) struct Tracked {
    pub id: String,
    pub identity: Identity,
    /// When this collector first saw it (Unix milliseconds).
    pub first_seen_ms: u64,
    /// Its directory's ctime (Unix milliseconds).
    pub created_ms: Option<u64>,
    pub meta: Metadata,
    /// The metadata provider's generation when `meta` was last looked up.
    pub meta_generation: Option<u64>,
    /// New since the first scan: a `Started` event is due after its first read (or with its
    /// `Stopped`, when it is gone before).
    pub announce_start: bool,
    /// The OOM kill counter at the last sweep, to notice kills.
    pub last_oom_kills: Option<u64>,
    pub dirs: CgDirs,
    /// Its cgroup files held open (`Config::hold_files`).
    pub files: FileCache,
    /// Reused between sweeps so the steady state does not reallocate.
    pub stats: ContainerStats,
    pub spec: SpecState,
    pub process_group: ProcessGroup,
    pub activity: Activity,
    pub proc: ProcState,
    pub signals: super::signals::Signals,
    pub peers: super::peers::PeerState,
}

/// Its spec as last read, and the watches that say when to read it again.
#[derive(Debug, Default)]
pub(super) struct SpecState {
    pub last: Spec,
    pub read_at: Option<Instant>,
    /// Its watches on the directories its spec is read from (`SpecWatch`), when all are.
    pub watches: Option<Watches>,
}

/// Its process group and socket states as last read, and when (`Config::process_interval`).
#[derive(Debug, Default)]
pub(super) struct ProcessGroup {
    pub last: ProcessStats,
    pub read_at: Option<Instant>,
    pub sockets: SocketStats,
    pub sockets_at: Option<Instant>,
    /// The socket inodes of its last walk, sorted (security signals).
    pub inodes: Vec<u64>,
    /// Its sockets are due to be judged against the socket tables at this sweep.
    pub tables_due: bool,
}

/// What tells an idle sweep from a full one, and the load averages carried between sweeps.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Has no followed cgroup below it: only such a cgroup's figures can stand still while
    /// it does nothing (a parent's include its children's).
    pub leaf: bool,
    /// Its last full read (`Config::idle_interval`).
    pub full: FullRead,
    /// Whether its last read was an idle one.
    pub idle: bool,
    pub last_load: Option<(LoadStats, Instant)>,
}

/// A process in it, held for network reads and for finding its writable layer.
#[derive(Debug, Default)]
pub(super) struct ProcState {
    pub handle: Option<ProcHandle>,
    /// The handle is due for renewal at the next full read.
    pub renew: bool,
    /// When the handle was last due for renewal.
    pub checked: Option<Instant>,
    /// Its last handle could not hold `/proc/<pid>` (descriptor budget spent).
    pub short: bool,
}

impl Tracked {
    pub fn new(
        id: String,
        identity: Identity,
        dirs: CgDirs,
        first_seen_ms: u64,
        created_ms: Option<u64>,
    ) -> Tracked {
        Tracked {
            id,
            identity,
            first_seen_ms,
            created_ms,
            meta: Metadata::default(),
            meta_generation: None,
            announce_start: false,
            last_oom_kills: None,
            dirs,
            files: FileCache::default(),
            stats: ContainerStats::default(),
            spec: SpecState::default(),
            process_group: ProcessGroup::default(),
            activity: Activity {
                leaf: true,
                ..Activity::default()
            },
            proc: ProcState::default(),
            signals: super::signals::Signals::default(),
            peers: super::peers::PeerState::default(),
        }
    }

    /// Descriptors it would hold with room: its directories but the spec-only one, and a
    /// process with its `net/dev`.
    pub fn descriptors_wanted(&self) -> usize {
        self.dirs.wanted() + 2
    }

    /// Descriptors its probe (read every sweep) wants and does not hold: the directories,
    /// and `/proc/<pid>` with its `net/dev` when its last handle could not be held.
    pub fn probe_short(&self) -> usize {
        self.dirs.probe_short() + if self.proc.short { 2 } else { 0 }
    }

    /// Forgets what was read through its directories: they changed, or were made again. Its
    /// spec and a process of it are taken afresh and the next read is a full one.
    pub fn forget_reads(&mut self, spec_watch: Option<&mut SpecWatch>) {
        self.spec.read_at = None;
        self.unwatch(spec_watch);
        self.proc.handle = None;
        self.activity.full.forget();
    }

    /// Lets go of its spec watches.
    pub fn unwatch(&mut self, spec_watch: Option<&mut SpecWatch>) {
        if let (Some(w), Some(ws)) = (spec_watch, self.spec.watches.take()) {
            w.unwatch(&ws);
        }
    }

    pub fn event(&self, kind: EventKind, time_ms: u64, count: u64) -> Event {
        Event {
            time_ms,
            kind,
            id: self.id.clone(),
            container_id: self.identity.container_id.clone(),
            runtime: self.identity.runtime,
            name: self.meta.name.clone(),
            image: self.meta.image.clone(),
            namespace: self.meta.namespace.clone(),
            pod: self.meta.pod.clone(),
            count,
            finding: None,
        }
    }
}

/// The id of a cgroup's parent (`/` for a top-level one; `None` for the root).
pub(super) fn parent_id(id: &str) -> Option<&str> {
    let cut = id.rfind('/')?;
    (id != "/").then_some(if cut == 0 { "/" } else { &id[..cut] })
}

/// Marks the cgroups that have no followed cgroup below them (the root is always a parent).
pub(super) fn mark_leaves(tracked: &mut [Tracked]) {
    let parents: std::collections::HashSet<&str> =
        tracked.iter().filter_map(|t| parent_id(&t.id)).collect();
    let leaf: Vec<bool> = tracked
        .iter()
        .map(|t| t.id != "/" && !parents.contains(t.id.as_str()))
        .collect();
    for (t, leaf) in tracked.iter_mut().zip(leaf) {
        t.activity.leaf = leaf;
    }
}
