//! The collector: keeps the list of cgroups current (`scan.rs`) and reads them all in one
//! sweep (`container.rs`, phase by phase).

mod config;
mod container;
mod peers;
mod scan;
mod security;
mod signals;
mod snapshot;
mod tracked;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::devices::DeviceNames;
use crate::dirs::DirPlan;
use crate::discover::Watcher;
use crate::error::Result;
use crate::events::EventKind;
use crate::hierarchy::Hierarchy;
use crate::load::LoadReader;
use crate::metadata::MetadataProvider;
use crate::network::NetReader;
use crate::read::{FdBudget, Reader};
use crate::specwatch::Written;
use container::Sweep;
use security::Security;
use tracked::Tracked;

pub use crate::metadata::Metadata;
pub use config::{Config, SecurityConfig};
pub use security::{ExecSource, SecurityCounters};
pub use snapshot::{Container, Snapshot};

/// What a collector holds of the process's and the kernel's resources
/// ([`Collector::resources`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Descriptors held open across sweeps, counted in its budget (with a shared budget,
    /// those of every collector sharing it).
    pub held_descriptors: usize,
    /// The most its budget allows.
    pub descriptor_budget: usize,
    /// inotify instances: one for new and removed cgroups, one for spec writes
    /// (`Config::watch`).
    pub inotify_instances: usize,
    /// inotify watches those hold (at most `Config::watch_limit` each).
    pub inotify_watches: usize,
    /// Writable-layer walker threads (`fs.container_layers`): none until the first layer
    /// is asked for, then `fs.workers`.
    pub walker_threads: usize,
    /// Whether a thread follows execs through the kernel's process events
    /// (`security.exec_events`).
    pub exec_watch: bool,
}

/// Finds containers and reads them. Not `Sync`: one sweep at a time; share the snapshots.
///
/// A container is followed from the sweep that finds its cgroup until the one that finds it
/// gone; its counters are read as the kernel keeps them (cumulative), so rates are the
/// reader's business, as in Prometheus.
///
/// ```
/// use std::time::Duration;
/// use collector_core::{Collector, Config};
///
/// // Only the machine's own cgroup and what runs under /system.slice, say.
/// let mut collector = Collector::new(Config {
///     include: vec!["/".into()],
///     ..Config::default()
/// })?;
/// let before = collector.sweep();
/// std::thread::sleep(Duration::from_millis(100));
/// let after = collector.sweep();
/// let cpu = |s: &collector_core::Snapshot| s.get("/").and_then(|c| c.stats.cpu.usage_ns);
/// if let (Some(a), Some(b)) = (cpu(&before), cpu(&after)) {
///     let cores = (b - a) as f64 / 1e9 / 0.1;
///     println!("the machine used {cores:.2} cores");
/// }
/// println!("{:?}", collector.resources());
/// # Ok::<(), collector_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Collector {
    config: Config,
    hierarchy: Hierarchy,
    tracked: Vec<Tracked>,
    watcher: Option<Watcher>,
    /// Writes to spec directories (`None` without inotify or `Config::watch`).
    spec_watch: Option<crate::specwatch::SpecWatch>,
    last_scan: Option<Instant>,
    reader: Reader,
    net: NetReader,
    load: Option<LoadReader>,
    processes: Option<crate::processes::ProcessReader>,
    devices: DeviceNames,
    user_hz: u64,
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
    security: Security,
    /// The mounts where the last sweep found no cgroup filesystem.
    missing_mounts: Vec<std::path::PathBuf>,
    /// What its held descriptors count against.
    budget: FdBudget,
}

impl Collector {
    /// Detects the hierarchy under the configured roots. Fails only when there is none.
    pub fn new(config: Config) -> Result<Collector> {
        let budget = match config.descriptor_budget {
            Some(n) => FdBudget::new(n),
            None => FdBudget::process_default(),
        };
        Self::with_budget(config, budget)
    }

    /// As [`new`](Self::new), its held descriptors counted against `budget` whatever
    /// `config.descriptor_budget` says: collectors given clones of one budget share it.
    pub fn with_budget(config: Config, budget: FdBudget) -> Result<Collector> {
        let hierarchy = Hierarchy::detect(&config.roots)?;
        let security = Security::new(&config, &hierarchy);
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
                n.budget = Some(budget.clone());
                n
            },
            devices: DeviceNames::new(config.roots.sys_root.clone()),
            user_hz: user_hz(),
            hierarchy,
            tracked: Vec::new(),
            watcher,
            spec_watch,
            last_scan: None,
            reader: Reader::with_budget(budget.clone()),
            load,
            processes: config.processes.then(|| {
                let mut p = crate::processes::ProcessReader::new(&config.roots.proc_root);
                p.collect_inodes(config.security.enabled);
                p
            }),
            metadata: None,
            scanned_once: false,
            recheck: false,
            budget_warned: false,
            machine: crate::machine::MachineReader::new(user_hz()),
            layers: config
                .fs
                .container_layers
                .then(|| crate::fs::Layers::new(&config.roots.proc_root, &config.fs)),
            security,
            missing_mounts: Vec::new(),
            budget,
            config,
        })
    }

    /// The cgroup hierarchies found when the collector was made.
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// The settings it was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The budget this collector's held descriptors count against.
    pub fn descriptor_budget(&self) -> &FdBudget {
        &self.budget
    }

    /// What this collector holds of the process's and the kernel's resources now. All of
    /// it is let go when the collector is dropped.
    pub fn resources(&self) -> Resources {
        Resources {
            held_descriptors: self.budget.held(),
            descriptor_budget: self.budget.limit(),
            inotify_instances: usize::from(self.watcher.is_some())
                + usize::from(self.spec_watch.is_some()),
            inotify_watches: self.watcher.as_ref().map_or(0, Watcher::watches)
                + self
                    .spec_watch
                    .as_ref()
                    .map_or(0, crate::specwatch::SpecWatch::watches),
            walker_threads: self.layers.as_ref().map_or(0, crate::fs::Layers::threads),
            exec_watch: self.security.watching(),
        }
    }

    /// Why nothing can be read, when the last sweep found no cgroup filesystem at any of the
    /// hierarchy's mounts (unmounted, or the roots are not the host's): `None` while one is.
    pub fn hierarchy_problem(&self) -> Option<String> {
        let mounts = self.hierarchy.mounts().len();
        (mounts > 0 && self.missing_mounts.len() == mounts).then(|| {
            let paths: Vec<String> = self
                .missing_mounts
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            format!(
                "no cgroup filesystem where the hierarchy should be: {} not mounted",
                paths.join(", ")
            )
        })
    }

    /// Notes the mounts with no cgroup filesystem now: a `statfs` each, a few microseconds a
    /// sweep, so an unmounted hierarchy is known at once rather than at the next walk.
    fn check_mounts(&mut self) {
        self.missing_mounts.clear();
        for m in self.hierarchy.mounts() {
            if !m.is_cgroupfs() {
                self.missing_mounts.push(m.path.clone());
            }
        }
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
        self.check_mounts();
        self.apply_execs();
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
        let plan = self.dir_plan();
        let spec_written = self
            .spec_watch
            .as_mut()
            .map(crate::specwatch::SpecWatch::poll)
            .unwrap_or_default();
        // The list is taken out while the sweep borrows the rest of the collector.
        let mut tracked = std::mem::take(&mut self.tracked);
        let metadata = self.metadata.clone();
        if let Some(a) = self.security.addrs.as_mut() {
            a.begin_sweep();
        }
        let mut sweep = self.sweeper(plan, spec_written, out.timestamp_ms);
        let mut i = 0;
        while i < tracked.len() {
            let alive = sweep.read(&mut tracked[i], &mut out.errors);
            if !alive {
                // Stopped while we looked: gone quietly, but it is news. Not the machine's
                // root, which does not stop: its hierarchy went (`hierarchy_problem`).
                let mut t = tracked.remove(i);
                t.unwatch(sweep.spec_watch.as_deref_mut());
                if t.id != "/" {
                    // Found by this sweep's walk and gone before its read (a long sweep): it
                    // did start, and no stop goes out without its start. Not looked up: a
                    // runtime would be asked about a container that is no more.
                    if t.announce_start {
                        out.events
                            .push(t.event(EventKind::Started, out.timestamp_ms, 1));
                    }
                    out.events
                        .push(t.event(EventKind::Stopped, out.timestamp_ms, 1));
                }
                continue;
            }
            let t = &mut tracked[i];
            apply_metadata(metadata.as_deref(), t);
            if t.announce_start {
                t.announce_start = false;
                out.events
                    .push(t.event(EventKind::Started, out.timestamp_ms, 1));
            }
            let kills = t.stats.memory.events.oom_kill;
            if let (Some(now), Some(before)) = (kills, t.last_oom_kills) {
                if now > before {
                    out.events
                        .push(t.event(EventKind::OomKill, out.timestamp_ms, now - before));
                }
            }
            if kills.is_some() {
                t.last_oom_kills = kills;
            }
            i += 1;
        }
        // Peers are resolved once every namespace of the sweep has been read.
        let addrs_changed = sweep.addrs.as_deref_mut().is_some_and(|a| a.end_sweep());
        out.containers.truncate(tracked.len());
        for (kept, t) in tracked.iter_mut().enumerate() {
            if sweep.examiner.is_some() {
                sweep.resolve_peers(t, addrs_changed);
                sweep.findings_to_events(t, &mut out.events);
            }
            // The figures move into the snapshot; the snapshot's old ones come back as this
            // container's buffers, cleared by `reset` at its next read. No deep copy.
            if kept < out.containers.len() {
                let c = &mut out.containers[kept];
                c.id.clone_from(&t.id);
                c.identity.clone_from(&t.identity);
                c.first_seen_ms = t.first_seen_ms;
                c.created_ms = t.created_ms;
                c.idle = t.activity.idle;
                c.meta.clone_from(&t.meta);
                std::mem::swap(&mut c.stats, &mut t.stats);
            } else {
                out.containers.push(Container {
                    id: t.id.clone(),
                    identity: t.identity.clone(),
                    first_seen_ms: t.first_seen_ms,
                    created_ms: t.created_ms,
                    idle: t.activity.idle,
                    meta: t.meta.clone(),
                    stats: std::mem::take(&mut t.stats),
                });
            }
        }
        let kept = tracked.len();
        out.containers.truncate(kept);
        name_pods(&mut out.containers);
        pod_network_once(&mut out.containers);
        self.security.unreported += sweep.unreported;
        self.tracked = tracked;
        if let Some(l) = self.layers.as_mut() {
            l.end_sweep();
        }
        out.duration_us = started.elapsed().as_micros() as u64;
    }

    /// What the phases of a container's read borrow for one sweep.
    fn sweeper(&mut self, plan: DirPlan, spec_written: Written, now_ms: u64) -> Sweep<'_> {
        Sweep {
            config: &self.config,
            setup: self.hierarchy.setup,
            user_hz: self.user_hz,
            reader: &mut self.reader,
            net: &mut self.net,
            load: self.load.as_mut(),
            processes: self.processes.as_mut(),
            devices: &mut self.devices,
            layers: self.layers.as_mut(),
            spec_watch: self.spec_watch.as_mut(),
            spec_written,
            plan,
            now: Instant::now(),
            now_ms,
            examiner: self.security.examiner.as_ref(),
            tcp_rows: &mut self.security.rows,
            rows_ns: None,
            addrs: self.security.addrs.as_mut(),
            unreported: 0,
        }
    }

    /// How this sweep shares the descriptor budget; says once when the probes cannot all be
    /// held.
    fn dir_plan(&mut self) -> DirPlan {
        let short: usize = self.tracked.iter().map(Tracked::probe_short).sum();
        let free = self.budget.limit().saturating_sub(self.budget.held());
        let plan = DirPlan::new(short, free);
        if short > free && !self.budget_warned {
            self.budget_warned = true;
            let wanted: usize = self.tracked.iter().map(Tracked::descriptors_wanted).sum();
            tracing::warn!(
                "the open files limit leaves room to hold {} descriptors, and the {} \
                 containers want about {wanted}: those beyond it are read by full path, which \
                 costs about twice the CPU; raise RLIMIT_NOFILE (LimitNOFILE=, ulimit -n) to \
                 {} or more",
                self.budget.limit(),
                self.tracked.len(),
                wanted + (wanted / 7).max(1024)
            );
        }
        plan
    }
}

/// Fills a container's metadata from the provider when unknown or when the provider learnt
/// something since the last look.
fn apply_metadata(provider: Option<&dyn MetadataProvider>, t: &mut Tracked) {
    let Some(p) = provider else { return };
    let generation = p.generation();
    if t.meta_generation == Some(generation) {
        return;
    }
    t.meta_generation = Some(generation);
    if let Some(m) = p.lookup(&t.identity, &t.id) {
        t.meta = m;
    }
}

/// A container of a Kubernetes pod other than its sandbox: its runtime names it with a
/// Kubernetes container name, which the sandbox has not (or has as `POD`, the dockershim's).
fn is_pod_app_container(c: &Container) -> bool {
    c.identity.pod_uid.is_some()
        && c.identity.kind == crate::identity::Kind::Container
        && c.meta.container.as_deref().is_some_and(|n| n != "POD")
}

/// A pod's containers share its network namespace: its traffic is reported once, on its
/// sandbox (as kubelet's cAdvisor does), so a sum over the pod does not count it once per
/// container. A pod without a sandbox cgroup (CRI-O's default, `drop_infra_ctr`) has it on its
/// own cgroup instead, taken from its first application container that read it; where that
/// cgroup is not followed either, that container keeps it.
fn pod_network_once(containers: &mut [Container]) {
    use crate::identity::Kind;
    use crate::stats::NetworkStatus;
    if !containers.iter().any(is_pod_app_container) {
        return;
    }
    // Read first, keyed by borrowed uids (no allocation per container); then apply.
    let mut with_sandbox = std::collections::HashSet::new();
    let mut pod_at = std::collections::HashMap::new();
    for (i, c) in containers.iter().enumerate() {
        match (c.identity.pod_uid.as_deref(), c.identity.kind) {
            (Some(uid), Kind::Pod) => {
                pod_at.insert(uid, i);
            }
            (Some(uid), Kind::Container) if !is_pod_app_container(c) => {
                with_sandbox.insert(uid);
            }
            _ => {}
        }
    }
    // Each application container, and where its figures go first (the pod's cgroup, or
    // `None`: it keeps them) for the first of a sandbox-less pod that read the namespace.
    let mut moved = std::collections::HashSet::new();
    let mut plan: Vec<(usize, Option<Option<usize>>)> = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        if !is_pod_app_container(c) {
            continue;
        }
        let uid = c.identity.pod_uid.as_deref().unwrap_or_default();
        let first = !with_sandbox.contains(uid)
            && c.stats.network.status == NetworkStatus::Own
            && moved.insert(uid);
        plan.push((i, first.then(|| pod_at.get(uid).copied())));
    }
    for (i, first) in plan {
        match first {
            Some(None) => continue,
            Some(Some(p)) => {
                let net = std::mem::take(&mut containers[i].stats.network);
                containers[p].stats.network = net;
            }
            None => {}
        }
        let n = &mut containers[i].stats.network;
        n.status = NetworkStatus::PodSandbox;
        n.interfaces.clear();
    }
}

/// A Kubernetes pod's own cgroup (its containers' parent) takes its namespace and pod name from
/// any of its containers, as kubelet's cAdvisor labels it: with `container` and `image` empty,
/// so that a pod and its containers are told apart and not summed twice.
fn name_pods(containers: &mut [Container]) {
    use crate::identity::Kind;
    if !containers
        .iter()
        .any(|c| c.identity.kind == Kind::Pod && c.meta.pod.is_none())
    {
        return;
    }
    // Borrowed while reading; only the names given to pods are copied.
    let mut names = Vec::new();
    {
        let named: std::collections::HashMap<&str, &crate::Metadata> = containers
            .iter()
            .filter(|c| c.identity.kind == Kind::Container && c.meta.pod.is_some())
            .filter_map(|c| Some((c.identity.pod_uid.as_deref()?, &c.meta)))
            .collect();
        for (i, c) in containers.iter().enumerate() {
            if c.identity.kind != Kind::Pod || c.meta.pod.is_some() {
                continue;
            }
            if let Some(m) = c.identity.pod_uid.as_deref().and_then(|u| named.get(u)) {
                names.push((i, m.namespace.clone(), m.pod.clone()));
            }
        }
    }
    for (i, ns, pod) in names {
        containers[i].meta.namespace = ns;
        containers[i].meta.pod = pod;
    }
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

#[cfg(test)]
mod tests;
