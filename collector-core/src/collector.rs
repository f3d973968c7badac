//! The collector: keeps the list of cgroups current and reads them all in one sweep.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::devices::DeviceNames;
use crate::discover::{self, Watcher};
use crate::error::{Error, Result};
use crate::events::{Event, EventKind};
use crate::hierarchy::{Controller, Hierarchy, Mount, Roots, Setup};
use crate::identity::{self, Identity, Kind};
use crate::load::{self, LoadReader};
use crate::metadata::MetadataProvider;
use crate::network::{self, NetReader};
use crate::read::{CgDir, Dir, Reader};
use crate::stats::{ContainerStats, LoadStats, Spec};
use crate::{v1, v2};

/// What to collect and where from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub roots: Roots,
    /// Only cgroups under these prefixes (all when empty).
    pub include: Vec<String>,
    /// Never cgroups under these prefixes.
    pub exclude: Vec<String>,
    /// Follow only the machine (`/`), runtime containers and Kubernetes pods; skip raw cgroups
    /// and systemd units (cAdvisor's `docker_only`).
    pub runtime_only: bool,
    /// Standalone containerd's namespaces (`/<namespace>/<id>` cgroups).
    pub containerd_namespaces: Vec<String>,
    /// Full rescan of the hierarchies at least this often when inotify is off or past its
    /// watch limit (new cgroups are then found by rescans only).
    pub rescan_interval: Duration,
    /// The same while inotify follows every directory of the watched hierarchy. The rescan is
    /// then a backstop for cgroups made in an unwatched v1 hierarchy alone (a systemd unit
    /// with only some controllers on); a walk of every hierarchy costs about 50 us per cgroup.
    pub watched_rescan_interval: Duration,
    /// Limits and shares (the spec files) are re-read this often, and when a container is
    /// new; between, the last values are reported. They change only on an update.
    pub spec_interval: Duration,
    /// The same while inotify watches the directories a container's spec is read from: a
    /// write to any file in them (an update) has the spec read at the next sweep, and this
    /// backstop covers what no write announces (a v1 cpuset trimmed by its parent's, CPU
    /// hotplug). See `specwatch.rs`.
    pub watched_spec_interval: Duration,
    /// A container that has done nothing since its last full read (no CPU time, no change in
    /// memory usage or tasks, none running or blocked; see `idle.rs`) has only those figures
    /// and its network counters read; the rest, which cannot have changed, are reported as
    /// last read, and read again at least this often. Zero reads every file of
    /// every container on every sweep.
    pub idle_interval: Duration,
    /// Keep the files read on every sweep open and read them with `pread` (no path lookup,
    /// open or close: about half the CPU per container). Each held file keeps a page of
    /// kernel memory (charged to this process's memory cgroup): some 60 KiB per container.
    /// Off by default. Held descriptors stay within `RLIMIT_NOFILE` less a reserve.
    pub hold_files: bool,
    /// Read per-CPU usage (v1 `cpuacct.usage_percpu`), one more file per container. Off by
    /// default, as the kubelet runs cAdvisor: such series grow with cores times containers.
    pub per_cpu: bool,
    /// Use inotify to notice new and removed cgroups between rescans.
    pub watch: bool,
    /// At most this many inotify watches (one per cgroup directory per hierarchy).
    pub watch_limit: usize,
    pub network: bool,
    /// Interfaces left out of the network figures, by name prefix. The default is cAdvisor's
    /// list: a namespace's loopback and host-side bridge and veth ends, which would add eight
    /// series per container and say nothing about its traffic.
    pub network_ignore: Vec<String>,
    pub load: bool,
    /// At most this many `/proc/<tid>/stat` reads per sweep for load (procfs fallback only).
    pub load_task_budget: usize,
    /// Writable-layer usage of containers and the machine's filesystems.
    pub fs: crate::fs::FsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            roots: Roots::default(),
            include: Vec::new(),
            exclude: Vec::new(),
            runtime_only: false,
            containerd_namespaces: vec!["k8s.io".into(), "moby".into(), "default".into()],
            rescan_interval: Duration::from_secs(30),
            watched_rescan_interval: Duration::from_secs(300),
            spec_interval: Duration::from_secs(30),
            watched_spec_interval: Duration::from_secs(300),
            idle_interval: Duration::from_secs(60),
            per_cpu: false,
            hold_files: false,
            watch: true,
            watch_limit: 65_536,
            network: true,
            network_ignore: ["lo", "veth", "docker", "nerdctl"]
                .map(String::from)
                .to_vec(),
            load: true,
            load_task_budget: 20_000,
            fs: crate::fs::FsConfig::default(),
        }
    }
}

/// One container in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Container {
    /// The cgroup path, as cAdvisor's `id` label (`/docker/<id>`, `/` for the machine).
    pub id: String,
    #[serde(flatten)]
    pub identity: Identity,
    /// When this collector first saw it (Unix milliseconds).
    pub first_seen_ms: u64,
    /// When its cgroup directory was made (its ctime, Unix milliseconds), where known.
    pub created_ms: Option<u64>,
    /// Read as idle in this sweep: only CPU, memory usage, tasks and network were read;
    /// the other figures are those of its last full read (`Config::idle_interval`).
    pub idle: bool,
    /// Names, image and labels from the container runtime, where known.
    pub meta: Metadata,
    pub stats: ContainerStats,
}

/// What a container runtime says about a container. Empty until a runtime has answered; the
/// container is still reported by its cgroup path meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: Option<String>,
    pub image: Option<String>,
    /// Kubernetes namespace, pod name and container name.
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One sweep's result: everything that could be read, and what could not.
#[derive(Debug, Default, Serialize)]
pub struct Snapshot {
    /// When the sweep started (Unix milliseconds).
    pub timestamp_ms: u64,
    pub setup: Option<Setup>,
    pub containers: Vec<Container>,
    pub machine: crate::machine::MachineStats,
    /// Lifecycle events noticed in this sweep.
    pub events: Vec<Event>,
    /// Errors met in the sweep; the containers they concern are still in `containers` with
    /// the fields that could be read.
    #[serde(serialize_with = "errors_as_text")]
    pub errors: Vec<Error>,
    pub duration_us: u64,
}

fn errors_as_text<S: serde::Serializer>(
    errs: &[Error],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(errs.iter().map(|e| e.to_string()))
}

impl Snapshot {
    pub fn get(&self, id: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.id == id)
    }
}

/// A cgroup being followed between sweeps.
#[derive(Debug)]
struct Tracked {
    id: String,
    identity: Identity,
    first_seen_ms: u64,
    created_ms: Option<u64>,
    meta: Metadata,
    v1: v1::Dirs<CgDir>,
    unified: Option<CgDir>,
    last_load: Option<(LoadStats, Instant)>,
    /// The OOM kill counter at the last sweep, to notice kills.
    last_oom_kills: Option<u64>,
    /// The metadata provider's generation when `meta` was last looked up.
    meta_generation: Option<u64>,
    /// New since the first scan: a `Started` event is due after its first read.
    announce_start: bool,
    /// Reused between sweeps so the steady state does not reallocate.
    stats: ContainerStats,
    /// The spec as last read, and when.
    spec: Spec,
    spec_read: Option<Instant>,
    /// A process in it, held for network reads.
    proc: Option<network::ProcHandle>,
    /// Its cgroup files held open (`Config::hold_files`).
    files: crate::read::FileCache,
    /// Has no followed cgroup below it: only such a cgroup's figures can stand still while
    /// it does nothing (a parent's include its children's).
    leaf: bool,
    /// Its last full read, for telling an idle sweep (`Config::idle_interval`).
    full: crate::idle::FullRead,
    /// Whether its last read was an idle one.
    idle: bool,
    /// The process handle is due for renewal at the next full read.
    renew_proc: bool,
    /// Whether the hybrid twin's `cpu.stat` agrees with v1 `cpuacct.usage` (checked on the
    /// spec interval): when it does not (its tasks are elsewhere), v1's files are read.
    twin_ok: bool,
    /// Its last process handle could not hold `/proc/<pid>` (descriptor budget spent).
    proc_short: bool,
    /// Its watches on the directories its spec is read from (`SpecWatch`), when all are.
    spec_watches: Option<crate::specwatch::Watches>,
    /// When its process handle was last due for renewal.
    proc_checked: Option<Instant>,
}

/// How a sweep shares a short descriptor budget. Every sweep reads a container's probe (the
/// hybrid twin's or unified `cpu.stat`, memory usage, `pids.current`, `net/dev`), full reads
/// only the rest; so the probe's descriptors come first for every container: the full read's
/// (cpu, cpuacct, blkio directories) take only what the probes leave free, and are let go
/// when the probes lack more than is free. Without it the first containers found held
/// everything and the rest nothing, and the cost per container grew with the count once
/// the budget ran out.
#[derive(Debug, Clone, Copy)]
struct DirPlan {
    /// Full-read descriptors that may still be taken this sweep.
    full_allowance: usize,
    /// Full-read descriptors still to let go this sweep.
    to_release: usize,
}

impl DirPlan {
    /// `probe_short`: probe descriptors wanted and not held; `free`: the budget's room.
    fn new(probe_short: usize, free: usize) -> DirPlan {
        DirPlan {
            full_allowance: free.saturating_sub(probe_short),
            to_release: probe_short.saturating_sub(free),
        }
    }
}

/// What a directory slot of `Tracked::dirs_mut` is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotUse {
    /// On every sweep (the probe): memory, pids, the cgroup2 one; cpuacct when the hybrid
    /// twin's CPU time cannot be used.
    Probe,
    /// By full reads only: cpu, blkio, cpuacct.
    Full,
    /// For the spec only: cpuset.
    Spec,
}

fn slot_use(i: usize, twin_ok: bool) -> SlotUse {
    match i {
        2 => SlotUse::Spec,
        1 if twin_ok => SlotUse::Full,
        0 | 4 => SlotUse::Full,
        _ => SlotUse::Probe,
    }
}

impl Tracked {
    /// With its files held, a container needs a directory descriptor only for the netlink
    /// load query (the cpu directory); the others would only spend the descriptor budget.
    /// Spec files, read rarely, are then opened by path.
    fn hold_netlink_dir_only(&mut self) {
        // The netlink query goes to the cpu directory, else to cpuacct (see `read_one`).
        let keep = if self.v1.cpu.is_some() { 0 } else { 1 };
        for (i, d) in self.dirs_mut().into_iter().enumerate() {
            if let Some(d) = d {
                if i == keep {
                    d.hold();
                } else {
                    d.release();
                }
            }
        }
    }

    fn for_each_dir(&mut self, f: impl FnMut(&mut CgDir)) {
        self.dirs_mut().into_iter().flatten().for_each(f);
    }

    /// Holds descriptors on the directories read from on sweeps: not the v1 cpuset one, read
    /// for the spec only (a descriptor costs kernel memory and a share of the budget). Those
    /// the probe reads on every sweep come first; those only full reads need are held as
    /// `plan` allows, or let go to make room (see `DirPlan`).
    fn hold_dirs(&mut self, plan: &mut DirPlan) {
        let twin_ok = self.twin_ok;
        for (i, slot) in self.dirs_mut().into_iter().enumerate() {
            let Some(d) = slot else { continue };
            match slot_use(i, twin_ok) {
                SlotUse::Spec => d.release(),
                SlotUse::Probe => d.hold(),
                SlotUse::Full if d.is_held() => {
                    if plan.to_release > 0 {
                        d.release();
                        plan.to_release -= 1;
                    }
                }
                SlotUse::Full => {
                    if plan.full_allowance > 0 {
                        d.hold();
                        plan.full_allowance -= 1;
                    }
                }
            }
        }
    }

    /// The directories its spec files are read from.
    fn spec_dirs(&self, setup: Setup) -> impl Iterator<Item = &std::path::Path> {
        let d = &self.v1;
        let dirs = if setup == Setup::Unified {
            [&self.unified, &None, &None, &None]
        } else {
            [&d.cpu, &d.cpuset, &d.memory, &d.pids]
        };
        dirs.into_iter().flatten().map(|d| d.path.as_path())
    }

    /// Descriptors it would hold with room: every directory but cpuset's, and a process with
    /// its `net/dev`.
    fn descriptors_wanted(&mut self) -> usize {
        let twin_ok = self.twin_ok;
        let dirs = self.dirs_mut().into_iter().enumerate();
        dirs.filter(|(i, d)| d.is_some() && slot_use(*i, twin_ok) != SlotUse::Spec)
            .count()
            + 2
    }

    /// Descriptors its probe (read every sweep) wants and does not hold: the directories,
    /// and `/proc/<pid>` with its `net/dev` when its last handle could not be held.
    fn probe_short(&mut self) -> usize {
        let twin_ok = self.twin_ok;
        let dirs = self.dirs_mut().into_iter().enumerate();
        let short = dirs
            .filter(|(i, d)| {
                slot_use(*i, twin_ok) == SlotUse::Probe && d.as_ref().is_some_and(|d| !d.is_held())
            })
            .count();
        short + if self.proc_short { 2 } else { 0 }
    }

    /// Its directories, cpu and cpuacct first (`slot_use` goes by this order).
    fn dirs_mut(&mut self) -> [&mut Option<CgDir>; 7] {
        let d = &mut self.v1;
        [
            &mut d.cpu,
            &mut d.cpuacct,
            &mut d.cpuset,
            &mut d.memory,
            &mut d.blkio,
            &mut d.pids,
            &mut self.unified,
        ]
    }
}

/// A directory to read from: by its descriptor, or by path when the descriptor is stale.
fn dir_of(d: &CgDir, stale: bool) -> Dir<'_> {
    if stale {
        Dir::from(d.path.as_path())
    } else {
        Dir::from(d)
    }
}

/// Keeps a followed directory (and its held descriptor) when a rescan finds the same path.
/// True when it changed.
fn adopt(slot: &mut Option<CgDir>, found: Option<PathBuf>) -> bool {
    match (slot.as_ref(), found) {
        (Some(d), Some(p)) if d.path == p => false,
        (None, None) => false,
        (_, p) => {
            *slot = p.map(CgDir::new);
            true
        }
    }
}

/// Finds containers and reads them. Not `Sync`: one sweep at a time; share the snapshots.
#[derive(Debug)]
pub struct Collector {
    config: Config,
    hierarchy: Hierarchy,
    tracked: Vec<Tracked>,
    watcher: Option<Watcher>,
    /// Writes to spec directories (`None` without inotify or `Config::watch`).
    spec_watch: Option<crate::specwatch::SpecWatch>,
    /// Containers whose spec directories were written since the last sweep.
    spec_written: crate::specwatch::Written,
    last_scan: Option<Instant>,
    reader: Reader,
    net: NetReader,
    load: Option<LoadReader>,
    devices: DeviceNames,
    user_hz: u64,
    scan_errors: Vec<Error>,
    metadata: Option<std::sync::Arc<dyn MetadataProvider>>,
    /// Whether the first scan is done (containers found by it are not "started" news).
    scanned_once: bool,
    /// Walk again at the next sweep (a new cgroup may have been found half made).
    recheck: bool,
    /// Said that the descriptor budget is too small for every container's probe.
    budget_warned: bool,
    machine: crate::machine::MachineReader,
    /// Writable layers and their background walkers (`None` when `fs.container_layers` is off).
    layers: Option<crate::fs::Layers>,
}

impl Collector {
    /// Detects the hierarchy under the configured roots. Fails only when there is none.
    pub fn new(config: Config) -> Result<Collector> {
        let hierarchy = Hierarchy::detect(&config.roots)?;
        let watcher = if config.watch {
            Watcher::new(config.watch_limit)
                .map_err(|e| tracing::warn!("inotify unavailable, periodic rescans only: {e}"))
                .ok()
        } else {
            None
        };
        let load = config
            .load
            .then(|| LoadReader::new(&config.roots.proc_root, config.load_task_budget));
        let spec_watch = if config.watch {
            crate::specwatch::SpecWatch::new(config.watch_limit)
                .map_err(|e| tracing::warn!("inotify unavailable, specs read on a timer: {e}"))
                .ok()
        } else {
            None
        };
        Ok(Collector {
            net: {
                let mut n = NetReader::new(&config.roots.proc_root);
                n.ignore = config.network_ignore.clone();
                n
            },
            devices: DeviceNames::new(config.roots.sys_root.clone()),
            user_hz: user_hz(),
            hierarchy,
            tracked: Vec::new(),
            watcher,
            spec_watch,
            spec_written: Default::default(),
            last_scan: None,
            reader: Reader::new(),
            load,
            scan_errors: Vec::new(),
            metadata: None,
            scanned_once: false,
            recheck: false,
            budget_warned: false,
            machine: crate::machine::MachineReader::new(user_hz()),
            layers: config
                .fs
                .container_layers
                .then(|| crate::fs::Layers::new(&config.roots.proc_root, &config.fs)),
            config,
        })
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether discovery has hit the inotify watch limit (rescans still find everything).
    pub fn watch_saturated(&self) -> bool {
        self.watcher.as_ref().is_some_and(Watcher::saturated)
    }

    /// Where names, images and labels come from. Looked up during sweeps, never waited on.
    pub fn set_metadata_provider(&mut self, p: std::sync::Arc<dyn MetadataProvider>) {
        self.metadata = Some(p);
    }

    /// Waits (up to `timeout`) until the writable layers found by the sweeps so far have been
    /// walked once, so that a one-shot snapshot taken next has their figures. True when all
    /// have (or layers are off). Sweeps never wait; this is for printing one snapshot.
    pub fn settle_fs(&self, timeout: Duration) -> bool {
        self.layers.as_ref().is_none_or(|l| l.settle(timeout))
    }

    /// Forces a full rescan at the next sweep.
    pub fn rescan_soon(&mut self) {
        self.last_scan = None;
    }

    /// The cgroup ids currently followed.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.tracked.iter().map(|t| t.id.as_str())
    }

    /// Reads every container once.
    pub fn sweep(&mut self) -> Snapshot {
        let mut s = Snapshot::default();
        self.sweep_into(&mut s);
        s
    }

    /// Reads every container once into `out`, reusing its buffers.
    pub fn sweep_into(&mut self, out: &mut Snapshot) {
        let started = Instant::now();
        out.timestamp_ms = unix_ms(SystemTime::now());
        out.setup = Some(self.hierarchy.setup);
        out.errors.clear();
        out.events.clear();
        self.refresh(out);
        self.machine.read(
            &self.config.roots,
            &self.config.fs,
            &mut self.devices,
            &mut out.errors,
            &mut out.machine,
        );
        if let Some(l) = self.layers.as_mut() {
            l.begin_sweep(out.machine.filesystems.iter().map(|f| crate::fs::Backing {
                major: f.major,
                minor: f.minor,
                size_bytes: f.size_bytes,
                avail_bytes: f.avail_bytes,
                files: f.files,
                files_free: f.files_free,
            }));
        }
        self.reader.take_errors(&mut out.errors);
        self.net.begin_sweep();
        if let Some(l) = self.load.as_mut() {
            l.begin_sweep();
        }
        let mut plan = self.dir_plan();
        self.spec_written = self
            .spec_watch
            .as_mut()
            .map(crate::specwatch::SpecWatch::poll)
            .unwrap_or_default();
        let now = Instant::now();
        let mut kept = 0;
        out.containers.truncate(self.tracked.len());
        let mut i = 0;
        while i < self.tracked.len() {
            let alive = self.read_one(i, now, out.timestamp_ms, &mut plan, &mut out.errors);
            if !alive {
                // Stopped while we looked: gone quietly, but it is news.
                let mut t = self.tracked.remove(i);
                unwatch(&mut self.spec_watch, &mut t);
                out.events
                    .push(event(&t, EventKind::Stopped, out.timestamp_ms, 1));
                continue;
            }
            self.apply_metadata(i);
            let t = &mut self.tracked[i];
            if t.announce_start {
                t.announce_start = false;
                out.events
                    .push(event(t, EventKind::Started, out.timestamp_ms, 1));
            }
            let kills = t.stats.memory.events.oom_kill;
            if let (Some(now), Some(before)) = (kills, t.last_oom_kills) {
                if now > before {
                    out.events
                        .push(event(t, EventKind::OomKill, out.timestamp_ms, now - before));
                }
            }
            if kills.is_some() {
                t.last_oom_kills = kills;
            }
            // The figures move into the snapshot; the snapshot's old ones come back as this
            // container's buffers, cleared by `reset` at its next read. No deep copy.
            let t = &mut self.tracked[i];
            if kept < out.containers.len() {
                let c = &mut out.containers[kept];
                c.id.clone_from(&t.id);
                c.identity.clone_from(&t.identity);
                c.first_seen_ms = t.first_seen_ms;
                c.created_ms = t.created_ms;
                c.idle = t.idle;
                c.meta.clone_from(&t.meta);
                std::mem::swap(&mut c.stats, &mut t.stats);
            } else {
                out.containers.push(Container {
                    id: t.id.clone(),
                    identity: t.identity.clone(),
                    first_seen_ms: t.first_seen_ms,
                    created_ms: t.created_ms,
                    idle: t.idle,
                    meta: t.meta.clone(),
                    stats: std::mem::take(&mut t.stats),
                });
            }
            kept += 1;
            i += 1;
        }
        out.containers.truncate(kept);
        if let Some(l) = self.layers.as_mut() {
            l.end_sweep();
        }
        out.duration_us = started.elapsed().as_micros() as u64;
    }

    /// How this sweep shares the descriptor budget; says once when the probes cannot all be
    /// held.
    fn dir_plan(&mut self) -> DirPlan {
        let short: usize = self.tracked.iter_mut().map(Tracked::probe_short).sum();
        let free = crate::read::dir_fd_budget().saturating_sub(crate::read::held_dir_fds());
        let plan = DirPlan::new(short, free);
        if short > free && !self.budget_warned {
            self.budget_warned = true;
            let wanted: usize = self
                .tracked
                .iter_mut()
                .map(Tracked::descriptors_wanted)
                .sum();
            tracing::warn!(
                "the open files limit leaves room to hold {} descriptors, and the {} \
                 containers want about {wanted}: those beyond it are read by full path, which \
                 costs about twice the CPU; raise RLIMIT_NOFILE (LimitNOFILE=, ulimit -n) to \
                 {} or more",
                crate::read::dir_fd_budget(),
                self.tracked.len(),
                wanted + (wanted / 7).max(1024)
            );
        }
        plan
    }

    /// Rescans when inotify saw a change or the rescan interval passed.
    fn refresh(&mut self, out: &mut Snapshot) {
        let changed = self.watcher.as_mut().is_some_and(Watcher::poll);
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
        if !(changed || due || self.recheck) {
            return;
        }
        self.last_scan = Some(Instant::now());
        let mounts: Vec<&Mount> = self.hierarchy.mounts();
        let filter = discover::prefix_filter(&self.config.include, &self.config.exclude);
        self.scan_errors.clear();
        let watch_index = self.watched_mount(&mounts);
        let found = discover::walk(
            &mounts,
            self.watcher.as_mut(),
            watch_index,
            &filter,
            &mut self.scan_errors,
        );
        out.errors.append(&mut self.scan_errors);
        let now_ms = unix_ms(SystemTime::now());

        // Keep the state of those still present, in the walk's (sorted) order.
        let mut old: std::collections::HashMap<String, Tracked> =
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
            let dir_in = |m: Option<&Mount>| -> Option<PathBuf> {
                let m = m?;
                let i = mounts.iter().position(|x| x.path == m.path)?;
                (bits & (1 << i.min(31)) != 0)
                    .then(|| m.dir_of(&id))
                    .flatten()
            };
            let v1dirs = v1::Dirs {
                cpu: dir_in(self.hierarchy.v1(Controller::Cpu)),
                cpuacct: dir_in(self.hierarchy.v1(Controller::Cpuacct)),
                cpuset: dir_in(self.hierarchy.v1(Controller::Cpuset)),
                memory: dir_in(self.hierarchy.v1(Controller::Memory)),
                blkio: dir_in(self.hierarchy.v1(Controller::Blkio)),
                pids: dir_in(self.hierarchy.v1(Controller::Pids)),
            };
            let unified = dir_in(self.hierarchy.unified.as_ref());
            if self.config.runtime_only && !old.contains_key(&id) {
                let kind = identity::classify(&id, &self.config.containerd_namespaces).kind;
                if !matches!(kind, Kind::Root | Kind::Container | Kind::Pod) {
                    continue;
                }
            }
            let mut is_new = false;
            let t = match old.remove(&id) {
                Some(mut t) => {
                    // Held descriptors stay with the paths they were opened on.
                    let v1::Dirs {
                        cpu,
                        cpuacct,
                        cpuset,
                        memory,
                        blkio,
                        pids,
                    } = v1dirs;
                    let changed = [
                        adopt(&mut t.v1.cpu, cpu),
                        adopt(&mut t.v1.cpuacct, cpuacct),
                        adopt(&mut t.v1.cpuset, cpuset),
                        adopt(&mut t.v1.memory, memory),
                        adopt(&mut t.v1.blkio, blkio),
                        adopt(&mut t.v1.pids, pids),
                        adopt(&mut t.unified, unified),
                    ];
                    if changed.contains(&true) {
                        t.files.clear();
                        t.spec_read = None;
                        unwatch(&mut self.spec_watch, &mut t);
                        t.proc = None;
                        t.full.forget();
                    }
                    t
                }
                None => {
                    is_new = true;
                    let wrap = |p: Option<PathBuf>| p.map(CgDir::new);
                    Tracked {
                        identity: identity::classify(&id, &self.config.containerd_namespaces),
                        created_ms: created_ms(
                            unified
                                .as_ref()
                                .or(v1dirs.cpu.as_ref())
                                .or(v1dirs.memory.as_ref()),
                        ),
                        meta: Metadata::default(),
                        id,
                        first_seen_ms: now_ms,
                        v1: v1::Dirs {
                            cpu: wrap(v1dirs.cpu),
                            cpuacct: wrap(v1dirs.cpuacct),
                            cpuset: wrap(v1dirs.cpuset),
                            memory: wrap(v1dirs.memory),
                            blkio: wrap(v1dirs.blkio),
                            pids: wrap(v1dirs.pids),
                        },
                        unified: wrap(unified),
                        last_load: None,
                        last_oom_kills: None,
                        meta_generation: None,
                        announce_start: false,
                        stats: ContainerStats::default(),
                        spec: Spec::default(),
                        spec_read: None,
                        proc: None,
                        files: Default::default(),
                        leaf: true,
                        full: Default::default(),
                        idle: false,
                        renew_proc: false,
                        twin_ok: true,
                        proc_short: false,
                        spec_watches: None,
                        proc_checked: None,
                    }
                }
            };
            let mut t = t;
            // Removed and perhaps made again under the same name: its watches are checked
            // (new directories give new ones). Every container's on a periodic rescan, where
            // inotify may not have said (about 3 us a watch, so not on every event's).
            let suspect = !changed
                || t.spec_dirs(self.hierarchy.setup)
                    .any(|d| removed.contains(d));
            if let (true, Some(w), Some(old)) = (suspect, self.spec_watch.as_mut(), t.spec_watches)
            {
                // The old watches are dead, and what was read through them is stale.
                let new = w.watch(t.spec_dirs(self.hierarchy.setup));
                if new != Some(old) {
                    let keep = new.unwrap_or_default();
                    let dead = old.map(|wd| wd.filter(|wd| !keep.contains(&Some(*wd))));
                    w.unwatch(&dead);
                    t.spec_watches = new;
                    t.spec_read = None;
                    t.full.forget();
                }
            }
            // Announced once read and named (metadata is applied during the read).
            t.announce_start = is_new && self.scanned_once;
            self.tracked.push(t);
        }
        mark_leaves(&mut self.tracked);
        // Whatever the walk did not find again is gone.
        for (_, mut t) in old {
            unwatch(&mut self.spec_watch, &mut t);
            out.events
                .push(event(&t, EventKind::Stopped, out.timestamp_ms, 1));
        }
        self.scanned_once = true;
        self.devices.retry_unknown();
    }

    /// The hierarchy inotify watches: cgroup2 on unified hosts, else the first mounted of
    /// memory, cpu, cpuacct, pids, blkio, cpuset.
    fn watched_mount(&self, mounts: &[&Mount]) -> usize {
        let h = &self.hierarchy;
        let pick = if h.setup == Setup::Unified {
            h.unified.as_ref()
        } else {
            [
                Controller::Memory,
                Controller::Cpu,
                Controller::Cpuacct,
                Controller::Pids,
                Controller::Blkio,
                Controller::Cpuset,
            ]
            .into_iter()
            .find_map(|c| h.v1(c))
        };
        pick.and_then(|m| mounts.iter().position(|x| x.path == m.path))
            .unwrap_or(0)
    }

    /// Reads one tracked cgroup into its stats. False when it has vanished.
    fn read_one(
        &mut self,
        i: usize,
        now: Instant,
        now_ms: u64,
        plan: &mut DirPlan,
        errors: &mut Vec<Error>,
    ) -> bool {
        let setup = self.hierarchy.setup;
        let t = &mut self.tracked[i];
        // Watched before its spec is read, so no write after the read goes unseen.
        if t.spec_watches.is_none() {
            if let Some(w) = self.spec_watch.as_mut() {
                t.spec_watches = w.watch(t.spec_dirs(setup));
            }
        }
        if self.config.hold_files && !t.files.is_empty() {
            t.hold_netlink_dir_only();
        } else {
            t.hold_dirs(plan);
        }
        let r = &mut self.reader;
        r.swap_files(&mut t.files, false);
        let s = &mut t.stats;
        reset(s);

        let written = t
            .spec_watches
            .as_ref()
            .is_some_and(|w| self.spec_written.any_of(w));
        let every = if t.spec_watches.is_some() {
            self.config.watched_spec_interval
        } else {
            self.config.spec_interval
        };
        let spec_due = written || t.spec_read.is_none_or(|at| now.duration_since(at) >= every);
        if written {
            // A write can change what no probe shows (a v1 max usage reset, force_empty): a
            // full read, and a new baseline after it.
            t.full.forget();
        }
        // Spec files are read rarely: never held.
        r.hold_files = self.config.hold_files && !spec_due;
        let mut want = v1::Want {
            spec: spec_due,
            per_cpu: self.config.per_cpu,
            cpu_usage: true,
            cpu_times: true,
        };
        if spec_due {
            s.spec = Spec::default();
        }

        // First what any activity moves: CPU time, memory usage, task counts.
        if setup == Setup::Unified {
            if let Some(dir) = &t.unified {
                v2::read_probe(r, dir.into(), s);
            }
        } else {
            // The hybrid twin first: its cpu.stat has the usage and exact user/system time,
            // which makes v1's cpuacct.usage and tick-rounded cpuacct.stat unnecessary.
            if let Some(dir) = &t.unified {
                v2::read_cpu(r, dir.into(), &mut s.cpu);
                if let (true, Some(twin), Some(acct)) = (spec_due, s.cpu.usage_ns, &t.v1.cpuacct) {
                    t.twin_ok = r
                        .u64(acct, "cpuacct.usage")
                        .is_none_or(|v1| twin_agrees(twin, v1));
                }
                if !t.twin_ok {
                    (s.cpu.usage_ns, s.cpu.user_ns, s.cpu.system_ns) = (None, None, None);
                }
            }
            want.cpu_usage = s.cpu.usage_ns.is_none();
            want.cpu_times = s.cpu.user_ns.is_none();
            v1::read_probe(r, &t.v1, self.user_hz, want, s);
        }

        // A directory whose processes can be listed: the unified one, else any v1 one.
        let v1_any = [
            &t.v1.cpu,
            &t.v1.cpuacct,
            &t.v1.memory,
            &t.v1.pids,
            &t.v1.blkio,
            &t.v1.cpuset,
        ]
        .into_iter()
        .flatten()
        .next();
        let procs_dir = if setup == Setup::Unified {
            t.unified.as_ref()
        } else {
            v1_any.or(t.unified.as_ref())
        };
        // Idle: nothing has moved since the last full read, whose other figures stand.
        t.full.observe(s, now);
        // Nothing has happened since the baseline (the full read that follows, if any, is
        // the idle interval's refresh).
        let unmoved = t.full.unmoved(s);
        let idle = t.leaf && !r.stale_dir && t.full.still_idle(s, now, self.config.idle_interval);
        t.idle = idle;
        let counts = match (self.load.as_mut(), procs_dir) {
            _ if idle => Some(t.full.counts()),
            (Some(load), Some(tasks_dir)) => {
                let v1_dir = t.v1.cpu.as_ref().or(t.v1.cpuacct.as_ref()).or(v1_any);
                // A directory descriptor found stale above would have the kernel count the
                // tasks of the removed cgroup: go by path then.
                let stale = r.stale_dir;
                load.counts(
                    r,
                    v1_dir.map(|d| dir_of(d, stale)),
                    dir_of(tasks_dir, stale),
                    setup == Setup::Unified,
                )
            }
            _ => None,
        };
        if let Some((counts, source)) = counts {
            let prev = t
                .last_load
                .map(|(l, at)| (l, now.duration_since(at).as_secs_f64()));
            let l = load::update_average(prev, counts, source);
            t.last_load = Some((l, now));
            s.load = Some(l);
        }

        if idle {
            t.full.restore(s, setup != Setup::Unified);
            if t.full.pressure_moving() {
                // Decaying averages: read again (the unified directory, or the hybrid twin).
                if let Some(dir) = &t.unified {
                    v2::read_pressure(r, dir.into(), &mut s.pressure);
                    t.full.update_pressure(&s.pressure);
                }
            }
        } else {
            // Then the rest.
            if setup == Setup::Unified {
                if let Some(dir) = &t.unified {
                    v2::read_rest(r, dir.into(), s);
                }
            } else {
                v1::read_rest(r, &t.v1, want, s);
                if let Some(dir) = &t.unified {
                    v2::read_pressure(r, dir.into(), &mut s.pressure);
                }
            }
            for d in s.blkio.iter_mut() {
                if d.device.is_none() {
                    d.device = self.devices.name(d.major, d.minor).map(str::to_string);
                }
            }
            // A read with errors or a stale directory is no baseline for later ones.
            if r.errors.is_empty() && !r.stale_dir {
                t.full.record(s, now);
            } else {
                t.full.forget();
            }
        }
        if spec_due {
            if setup == Setup::Unified {
                if let Some(dir) = &t.unified {
                    v2::read_spec(r, dir.into(), s);
                }
            } else {
                v1::read_spec(r, &t.v1, s);
            }
        }
        if spec_due {
            t.spec.assign(&s.spec);
            t.spec_read = Some(now);
        } else {
            s.spec.assign(&t.spec);
        }
        s.pids.limit = s.spec.pids_limit;

        // A process of the container, for its network namespace and its writable layer. Its
        // handle is kept while the process lives, and renewed on the first read after each
        // spec interval that shows activity, in case it moved to another cgroup or namespace:
        // a move changes the task count, a change of namespace takes CPU time.
        let kind = t.identity.kind;
        let wants_net = self.config.network && kind != Kind::Root;
        let wants_pid = wants_net || (self.layers.is_some() && kind == Kind::Container);
        if t.proc_checked
            .is_none_or(|at| now.duration_since(at) >= self.config.spec_interval)
        {
            t.renew_proc = true;
            t.proc_checked = Some(now);
        }
        if !wants_pid || (t.renew_proc && !unmoved) {
            t.proc = None;
            t.renew_proc = false;
        }
        let renew = |net: &mut NetReader, r: &mut Reader| {
            procs_dir
                .and_then(|d| network::first_pid(r, d.into()))
                .map(|pid| net.handle(pid))
        };
        if wants_pid && t.proc.is_none() {
            t.proc = renew(&mut self.net, r);
        }
        if !wants_net {
            s.network.interfaces.clear();
        }
        if wants_net && !self.net.read(t.proc.as_mut(), r, &mut s.network, idle) {
            // That process has exited: take another one, once.
            t.proc = renew(&mut self.net, r);
            self.net.read(t.proc.as_mut(), r, &mut s.network, false);
        }
        if let Some(layers) = self.layers.as_mut() {
            // The network read may have skipped the process (a shared or the host's
            // namespace): make sure it is still there before its mounts are looked at.
            // (An idle container's task count has not moved: its process is still there.)
            if kind == Kind::Container && !idle && t.proc.as_ref().is_some_and(|h| !h.alive()) {
                t.proc = renew(&mut self.net, r);
            }
            let pid = t.proc.as_ref().map(|h| h.pid);
            s.fs = layers.read(&t.id, kind, pid, &mut self.devices, now_ms);
        }
        t.proc_short = t.proc.as_ref().is_some_and(|h| !h.is_held());
        if t.proc_short {
            // No descriptor to pin the process: its pid may belong to another by the next
            // sweep, so the handle ends with this one.
            t.proc = None;
        }

        let gone = r.saw_missing && procs_dir.is_some_and(|d| !d.path.exists());
        if r.stale_dir {
            // Removed and made again under the same name: reopen at the next read, and take
            // its spec and a process of it afresh.
            t.for_each_dir(CgDir::release);
            r.drop_files();
            t.spec_read = None;
            // The watches were on the removed directories.
            if let (Some(w), Some(ws)) = (self.spec_watch.as_mut(), t.spec_watches.take()) {
                w.unwatch(&ws);
            }
            t.proc = None;
            t.full.forget();
        }
        r.hold_files = false;
        // Files an idle sweep did not read are still wanted by the next full one.
        r.swap_files(&mut t.files, !idle);
        if gone {
            r.errors.clear();
            r.saw_missing = false;
            r.stale_dir = false;
            return false;
        }
        r.take_errors(errors);
        true
    }
}

/// Lets go of a container's spec watches.
fn unwatch(sw: &mut Option<crate::specwatch::SpecWatch>, t: &mut Tracked) {
    if let (Some(w), Some(ws)) = (sw.as_mut(), t.spec_watches.take()) {
        w.unwatch(&ws);
    }
}

/// Whether the hybrid twin's CPU time (read first, in whole microseconds) and v1's agree: the
/// twin then holds the container's tasks. Within 2% or 50 ms.
fn twin_agrees(twin_ns: u64, v1_ns: u64) -> bool {
    twin_ns.abs_diff(v1_ns) <= (v1_ns / 50).max(50_000_000)
}

/// The id of a cgroup's parent (`/` for a top-level one; `None` for the root).
fn parent_id(id: &str) -> Option<&str> {
    let cut = id.rfind('/')?;
    (id != "/").then_some(if cut == 0 { "/" } else { &id[..cut] })
}

/// Marks the cgroups that have no followed cgroup below them (the root is always a parent).
fn mark_leaves(tracked: &mut [Tracked]) {
    let parents: std::collections::HashSet<&str> =
        tracked.iter().filter_map(|t| parent_id(&t.id)).collect();
    let leaf: Vec<bool> = tracked
        .iter()
        .map(|t| t.id != "/" && !parents.contains(t.id.as_str()))
        .collect();
    for (t, leaf) in tracked.iter_mut().zip(leaf) {
        t.leaf = leaf;
    }
}

impl Collector {
    /// Fills a container's metadata from the provider when unknown or when the provider learnt
    /// something since the last look.
    fn apply_metadata(&mut self, i: usize) {
        let Some(p) = &self.metadata else { return };
        let t = &mut self.tracked[i];
        let generation = p.generation();
        if t.meta_generation == Some(generation) {
            return;
        }
        t.meta_generation = Some(generation);
        if let Some(m) = p.lookup(&t.identity, &t.id) {
            t.meta = m;
        }
    }
}

fn event(t: &Tracked, kind: EventKind, time_ms: u64, count: u64) -> Event {
    Event {
        time_ms,
        kind,
        id: t.id.clone(),
        container_id: t.identity.container_id.clone(),
        runtime: t.identity.runtime,
        name: t.meta.name.clone(),
        image: t.meta.image.clone(),
        count,
    }
}

/// Clears figures but keeps the buffers (the spec is overwritten whole by the read; the
/// interfaces in place by the network read, or cleared when there is none).
fn reset(s: &mut ContainerStats) {
    let spec = std::mem::take(&mut s.spec);
    let mut per_cpu = std::mem::take(&mut s.cpu.per_cpu_ns);
    per_cpu.clear();
    let mut blkio = std::mem::take(&mut s.blkio);
    blkio.clear();
    let ifaces = std::mem::take(&mut s.network.interfaces);
    *s = ContainerStats::default();
    s.cpu.per_cpu_ns = per_cpu;
    s.blkio = blkio;
    s.network.interfaces = ifaces;
    s.spec = spec;
}

/// A cgroup directory's ctime: set when it is made (cgroupfs files are not renamed or chmod-ed
/// by runtimes), so it stands for the container's start as cAdvisor takes it.
fn created_ms(dir: Option<&PathBuf>) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir?).ok()?;
    let ms = m.ctime().checked_mul(1000)? + m.ctime_nsec() / 1_000_000;
    u64::try_from(ms).ok()
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// USER_HZ, the unit of `cpuacct.stat`.
fn user_hz() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => 100,
    }
}
