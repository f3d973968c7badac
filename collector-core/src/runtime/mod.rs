//! Names, images and labels from the container runtimes, behind the [`MetadataProvider`] seam.
//!
//! [`Providers`] follows each configured runtime over its unix socket from background tasks and
//! keeps what it learns in memory; [`MetadataProvider::lookup`] is a map read under a read lock,
//! so a sweep never waits on a runtime.
//!
//! | runtime | how | what tells it of new containers |
//! | --- | --- | --- |
//! | Docker | Engine API (HTTP/1.1 on `/var/run/docker.sock`) | `/events`, a re-list every `relist_interval` |
//! | Podman | the same Engine API, served by `podman system service` (`/run/podman/podman.sock`) | the same |
//! | containerd | gRPC (HTTP/2 on `/run/containerd/containerd.sock`), every namespace (`k8s.io` too) | `Events/Subscribe` (`/containers/*` topics), a re-list |
//! | CRI-O | `GET /containers/<id>` on `/var/run/crio/crio.sock` | asked when the collector meets an id it does not know |
//!
//! Every runtime is optional: an absent socket or a daemon that is down is retried with
//! exponential back-off (`backoff_initial` doubling up to `backoff_max`) and logged once per
//! outage, not per attempt. What was learnt stays while a runtime is down, so names do not
//! flicker; a re-list on reconnection brings the table up to date.
//!
//! When the collector looks up a container id that no runtime has told of yet, the provider
//! asks the runtime the id belongs to (by its cgroup path) for it in the background: that is
//! how CRI-O is read at all, and a backstop for a missed Docker or containerd event.
//!
//! Kubernetes identity (`namespace`, `pod`, `container`) comes from the `io.kubernetes.*`
//! labels that kubelet's runtimes put on containers; see `kube.rs`.
//!
//! ```no_run
//! use collector_core::{runtime, Collector, Config};
//!
//! let providers = runtime::Providers::start(runtime::Config::default());
//! let mut collector = Collector::new(Config::default())?;
//! collector.set_metadata_provider(providers.clone());
//! let snapshot = collector.sweep();
//! # Ok::<(), collector_core::Error>(())
//! ```

// With some runtime features off, parts of the common machinery go unused.
#![cfg_attr(
    not(all(feature = "docker", feature = "containerd", feature = "crio")),
    allow(dead_code, unused_imports, unused_variables, unused_mut)
)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::collector::Metadata;
use crate::identity::{Identity, Runtime};
use crate::metadata::MetadataProvider;

#[cfg(feature = "containerd")]
mod containerd;
#[cfg(feature = "crio")]
mod crio;
#[cfg(feature = "docker")]
mod docker;
#[cfg(any(feature = "docker", feature = "crio"))]
mod http;
pub(crate) mod kube;

/// A Docker Engine API endpoint: Docker itself, or Podman's Docker-compatible service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The Engine API's unix socket.
    pub socket: PathBuf,
    /// A full re-list at least this often, a backstop for events missed.
    pub relist_interval: Duration,
}

impl EngineConfig {
    /// Where Docker listens by default.
    pub const DOCKER_SOCKET: &'static str = "/var/run/docker.sock";
    /// Where `podman.socket` (or `podman system service`) listens for root.
    pub const PODMAN_SOCKET: &'static str = "/run/podman/podman.sock";

    /// Docker at [`Self::DOCKER_SOCKET`], re-listed every 60 s.
    pub fn docker() -> EngineConfig {
        EngineConfig {
            socket: Self::DOCKER_SOCKET.into(),
            relist_interval: Duration::from_secs(60),
        }
    }

    /// Podman's root service at [`Self::PODMAN_SOCKET`], re-listed every 60 s.
    pub fn podman() -> EngineConfig {
        EngineConfig {
            socket: Self::PODMAN_SOCKET.into(),
            ..EngineConfig::docker()
        }
    }
}

/// containerd's gRPC API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdConfig {
    /// containerd's unix socket; [`Self::SOCKET`] by default.
    pub socket: PathBuf,
    /// The namespaces to follow; empty for every namespace containerd has (`k8s.io`, `moby`,
    /// `default`, ...), listed again at each re-list.
    pub namespaces: Vec<String>,
    /// A full re-list at least this often, a backstop for events missed.
    pub relist_interval: Duration,
}

impl ContainerdConfig {
    /// Where containerd listens by default.
    pub const SOCKET: &'static str = "/run/containerd/containerd.sock";
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        ContainerdConfig {
            socket: Self::SOCKET.into(),
            namespaces: Vec::new(),
            relist_interval: Duration::from_secs(60),
        }
    }
}

/// CRI-O's inspect endpoint (it has no list or event stream there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrioConfig {
    /// CRI-O's unix socket; [`Self::SOCKET`] by default.
    pub socket: PathBuf,
    /// Containers already known are inspected again this often; those CRI-O no longer knows
    /// are forgotten.
    pub refresh_interval: Duration,
}

impl CrioConfig {
    /// Where CRI-O listens by default.
    pub const SOCKET: &'static str = "/var/run/crio/crio.sock";
}

impl Default for CrioConfig {
    fn default() -> Self {
        CrioConfig {
            socket: Self::SOCKET.into(),
            refresh_interval: Duration::from_secs(60),
        }
    }
}

/// Which runtimes to follow and how. `None` turns a runtime off; by default all four are on
/// at their usual sockets, and those absent cost one failed `connect` per back-off period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Docker's Engine API; `None` to leave Docker out.
    pub docker: Option<EngineConfig>,
    /// Podman's Docker-compatible service; `None` to leave Podman out.
    pub podman: Option<EngineConfig>,
    /// containerd; `None` to leave it out.
    pub containerd: Option<ContainerdConfig>,
    /// CRI-O; `None` to leave it out.
    pub crio: Option<CrioConfig>,
    /// The first retry after a runtime is found absent or down; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// The longest wait between retries; 30 s by default.
    pub backoff_max: Duration,
    /// The longest a single request may take (not the event streams).
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            docker: Some(EngineConfig::docker()),
            podman: Some(EngineConfig::podman()),
            containerd: Some(ContainerdConfig::default()),
            crio: Some(CrioConfig::default()),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// No runtime at all; switch on the ones wanted.
    pub fn none() -> Config {
        Config {
            docker: None,
            podman: None,
            containerd: None,
            crio: None,
            ..Config::default()
        }
    }
}

/// One runtime endpoint followed by a [`Providers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Docker's Engine API.
    Docker,
    /// Podman's Docker-compatible service.
    Podman,
    /// containerd's gRPC API.
    Containerd,
    /// CRI-O's inspect endpoint.
    Crio,
}

impl Source {
    /// The runtime's name for logs and labels (`docker`, `podman`, `containerd`, `crio`).
    pub fn name(self) -> &'static str {
        self.runtime().name()
    }

    /// The container runtime this endpoint belongs to.
    pub fn runtime(self) -> Runtime {
        match self {
            Source::Docker => Runtime::Docker,
            Source::Podman => Runtime::Podman,
            Source::Containerd => Runtime::Containerd,
            Source::Crio => Runtime::Crio,
        }
    }
}

/// What a [`Providers`] knows of one runtime, for health metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// The runtime endpoint.
    pub source: Source,
    /// The socket it is followed on.
    pub socket: PathBuf,
    /// Connected now (it answered and its event stream, where it has one, is open).
    pub up: bool,
    /// Containers known from it.
    pub containers: usize,
}

/// A container as one runtime describes it. `namespace` is containerd's namespace (empty for
/// the other runtimes); the same id may exist in two containerd namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    namespace: String,
    meta: Metadata,
}

type Table = HashMap<String, Vec<Record>>;

/// Lookup misses waiting for a runtime's task to ask about them.
const WANT_QUEUE: usize = 1024;

/// A container id the collector met and no runtime had told of, to be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Want {
    id: String,
    /// containerd's namespace, when the cgroup path says (`/<namespace>/<id>`).
    namespace: Option<String>,
}

/// One runtime's table, shared by its background task (writer) and lookups (readers).
#[derive(Debug)]
struct Shared {
    source: Source,
    socket: PathBuf,
    up: AtomicBool,
    /// Say the next connection: the first, or the first after an outage that was said.
    announce: AtomicBool,
    table: RwLock<Table>,
    generation: Arc<AtomicU64>,
    want: Option<tokio::sync::mpsc::Sender<Want>>,
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Marks the runtime reachable; logs the transition, unless the runtime is flapping (the
    /// supervisor said its outage once and stays quiet until it is up steadily).
    fn mark_up(&self) {
        let was_up = self.up.swap(true, Ordering::AcqRel);
        if !was_up {
            // Containers met while the runtime was away were not asked about (lookups ask only
            // a runtime that is up): a new generation has the collector look them up again.
            self.bump();
        }
        if !was_up && self.announce.swap(false, Ordering::AcqRel) {
            tracing::info!(
                runtime = self.source.name(),
                socket = %self.socket.display(),
                containers = self.len(),
                "container runtime connected"
            );
        }
    }

    fn len(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    fn knows(&self, id: &str) -> bool {
        self.read().contains_key(id)
    }

    fn get(&self, id: &str, namespace: Option<&str>) -> Option<Metadata> {
        let t = self.read();
        let records = t.get(id)?;
        let pick = namespace
            .and_then(|ns| records.iter().find(|r| r.namespace == ns))
            .or_else(|| records.iter().find(|r| r.namespace == "k8s.io"))
            .or_else(|| records.first())?;
        Some(pick.meta.clone())
    }

    /// Adds or replaces one container; bumps the generation when that changed anything.
    fn upsert(&self, id: &str, namespace: &str, meta: Metadata) {
        let changed = {
            let mut t = self.write();
            let records = t.entry(id.to_string()).or_default();
            match records.iter_mut().find(|r| r.namespace == namespace) {
                Some(r) if r.meta == meta => false,
                Some(r) => {
                    r.meta = meta;
                    true
                }
                None => {
                    records.push(Record {
                        namespace: namespace.to_string(),
                        meta,
                    });
                    true
                }
            }
        };
        if changed {
            self.bump();
        }
    }

    fn remove(&self, id: &str, namespace: &str) {
        let changed = {
            let mut t = self.write();
            match t.get_mut(id) {
                Some(records) => {
                    let before = records.len();
                    records.retain(|r| r.namespace != namespace);
                    let changed = records.len() != before;
                    if records.is_empty() {
                        t.remove(id);
                    }
                    changed
                }
                None => false,
            }
        };
        if changed {
            self.bump();
        }
    }

    /// Replaces the whole table with a fresh listing (built outside the lock).
    fn replace(&self, fresh: Table) {
        let changed = {
            let mut t = self.write();
            if *t == fresh {
                false
            } else {
                *t = fresh;
                true
            }
        };
        if changed {
            self.bump();
        }
    }

    /// Never waits: when the queue is full the id is asked for at a later miss.
    fn ask(&self, want: Want) {
        if let Some(tx) = &self.want {
            let _ = tx.try_send(want);
        }
    }
}

/// The backstop timer of a runtime client: first tick one period from now, at least a second
/// apart, and no burst of catch-up ticks after a long await.
fn backstop(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_secs(1));
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// Builds a container's metadata: empty strings are "unknown", Kubernetes identity from the
/// labels (or from a dockershim-style name).
fn metadata(name: &str, image: &str, labels: BTreeMap<String, String>) -> Metadata {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut m = Metadata {
        name: some(name.trim_start_matches('/')),
        image: some(image),
        labels,
        ..Metadata::default()
    };
    kube::apply(&mut m);
    m
}

/// The runtime clients, started once and shared with the collector (and with the exporter
/// for [`Providers::status`]). Dropping the last `Arc` stops the background tasks.
#[derive(Debug)]
pub struct Providers {
    sources: Vec<Arc<Shared>>,
    generation: Arc<AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Providers {
    /// Starts the configured runtime clients on a thread of their own (`runtime-metadata`,
    /// running a single-threaded tokio runtime), so they neither need nor disturb the caller's
    /// runtime. Returns at once: every runtime is connected to in the background.
    pub fn start(config: Config) -> Arc<Providers> {
        let (providers, tasks) = Providers::build(config);
        if !tasks.is_empty() {
            let spawned = std::thread::Builder::new()
                .name("runtime-metadata".into())
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!("runtime metadata disabled: no tokio runtime: {e}");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let mut set = tokio::task::JoinSet::new();
                        for t in tasks {
                            set.spawn(t);
                        }
                        while set.join_next().await.is_some() {}
                    });
                });
            if let Err(e) = spawned {
                tracing::error!("runtime metadata disabled: cannot start its thread: {e}");
            }
        }
        providers
    }

    /// Starts the configured runtime clients as tasks on `handle` (a multi-threaded runtime or
    /// a current-thread one that keeps being driven). Returns at once.
    pub fn start_on(config: Config, handle: &tokio::runtime::Handle) -> Arc<Providers> {
        let (providers, tasks) = Providers::build(config);
        for t in tasks {
            handle.spawn(t);
        }
        providers
    }

    fn build(config: Config) -> (Arc<Providers>, Vec<Task>) {
        let generation = Arc::new(AtomicU64::new(0));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let backoff = Backoff {
            initial: config.backoff_initial.max(Duration::from_millis(10)),
            max: config.backoff_max.max(config.backoff_initial),
        };
        let mut sources = Vec::new();
        let mut tasks: Vec<Task> = Vec::new();
        let mut shared = |source: Source, socket: &PathBuf| {
            let (tx, rx) = tokio::sync::mpsc::channel(WANT_QUEUE);
            let s = Arc::new(Shared {
                source,
                socket: socket.clone(),
                up: AtomicBool::new(false),
                announce: AtomicBool::new(true),
                table: RwLock::new(Table::new()),
                generation: generation.clone(),
                want: Some(tx),
            });
            sources.push(s.clone());
            (s, rx)
        };
        let timeout = config.request_timeout;
        for (source, cfg) in [
            (Source::Docker, &config.docker),
            (Source::Podman, &config.podman),
        ] {
            let Some(cfg) = cfg else { continue };
            #[cfg(feature = "docker")]
            {
                let (s, rx) = shared(source, &cfg.socket);
                tasks.push(Box::pin(supervise(
                    s,
                    docker::Session::new(cfg.clone(), timeout, rx),
                    backoff,
                    stop_rx.clone(),
                )));
            }
            #[cfg(not(feature = "docker"))]
            not_compiled(source, "docker");
        }
        if let Some(cfg) = &config.containerd {
            #[cfg(feature = "containerd")]
            {
                let (s, rx) = shared(Source::Containerd, &cfg.socket);
                tasks.push(Box::pin(supervise(
                    s,
                    containerd::Session::new(cfg.clone(), timeout, rx),
                    backoff,
                    stop_rx.clone(),
                )));
            }
            #[cfg(not(feature = "containerd"))]
            not_compiled(Source::Containerd, "containerd");
        }
        if let Some(cfg) = &config.crio {
            #[cfg(feature = "crio")]
            {
                let (s, rx) = shared(Source::Crio, &cfg.socket);
                tasks.push(Box::pin(supervise(
                    s,
                    crio::Session::new(cfg.clone(), timeout, rx),
                    backoff,
                    stop_rx.clone(),
                )));
            }
            #[cfg(not(feature = "crio"))]
            not_compiled(Source::Crio, "crio");
        }
        let _ = (timeout, &stop_rx, backoff, &mut shared);
        let providers = Arc::new(Providers {
            sources,
            generation,
            stop,
        });
        (providers, tasks)
    }

    /// Each configured runtime: reachable or not, and how many containers it told of.
    pub fn status(&self) -> Vec<SourceStatus> {
        self.sources
            .iter()
            .map(|s| SourceStatus {
                source: s.source,
                socket: s.socket.clone(),
                up: s.is_up(),
                containers: s.len(),
            })
            .collect()
    }

    /// Stops the background tasks (also done when the last `Arc` is dropped).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// The sources to ask about a container: those of the runtime its cgroup path names, or
    /// every source when the path names none (Kubernetes' cgroupfs driver) or a runtime not
    /// followed here.
    fn candidates(&self, runtime: Option<Runtime>) -> impl Iterator<Item = &Arc<Shared>> {
        let own = runtime.is_some()
            && self
                .sources
                .iter()
                .any(|s| Some(s.source.runtime()) == runtime);
        self.sources
            .iter()
            .filter(move |s| !own || Some(s.source.runtime()) == runtime)
    }
}

#[cfg(not(all(feature = "docker", feature = "containerd", feature = "crio")))]
fn not_compiled(source: Source, feature: &str) {
    tracing::warn!(
        runtime = source.name(),
        "runtime support not compiled in (cargo feature `{feature}`); its containers go unnamed"
    );
}

impl Drop for Providers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl MetadataProvider for Providers {
    fn lookup(&self, identity: &Identity, cgroup_id: &str) -> Option<Metadata> {
        let id = identity.container_id.as_deref()?;
        // Standalone containerd: `/<namespace>/<id>`, the bare id. A `cri-containerd-<id>.scope`
        // two levels down is under a slice, not a namespace: asked in every namespace.
        let namespace = (identity.runtime == Some(Runtime::Containerd))
            .then(|| {
                let mut parts = cgroup_id.split('/').filter(|p| !p.is_empty());
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(ns), Some(leaf), None) if leaf == id => Some(ns),
                    _ => None,
                }
            })
            .flatten();
        for s in self.candidates(identity.runtime) {
            if let Some(m) = s.get(id, namespace) {
                return Some(m);
            }
        }
        // Nobody has told of it yet: ask in the background (the answer bumps the generation,
        // and the collector looks again).
        for s in self.candidates(identity.runtime) {
            if s.is_up() {
                s.ask(Want {
                    id: id.to_string(),
                    namespace: namespace.map(str::to_string),
                });
            }
        }
        None
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Exponential back-off between connection attempts.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    initial: Duration,
    max: Duration,
}

/// Why a connection to a runtime ended.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One connection to a runtime: runs until it fails, keeping `shared` current meanwhile.
trait Session {
    /// Connects, lists, calls [`Shared::mark_up`], then follows the runtime until something
    /// fails; returns why.
    fn run(&mut self, shared: &Shared) -> impl std::future::Future<Output = BoxError> + Send;
}

/// Resolves when a stop is asked for (or the [`Providers`] is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// A connection that stays up this long is healthy: its loss is news again, and the back-off
/// starts over. One that drops sooner is a runtime flapping, retried with growing waits.
const STEADY: Duration = Duration::from_secs(60);

/// Runs sessions one after another, with back-off between failures, until stopped. Logs once
/// per outage: the first failure to reach a runtime, or the loss of one that was up steadily;
/// a runtime that keeps dropping its connections soon after answering is said once, not at
/// every drop, and its retries back off.
async fn supervise<S: Session>(
    shared: Arc<Shared>,
    mut session: S,
    backoff: Backoff,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut delay = backoff.initial;
    let mut logged = false;
    loop {
        let started = std::time::Instant::now();
        let err = tokio::select! {
            e = session.run(&shared) => e,
            _ = stopped(&mut stop) => return,
        };
        let was_up = shared.up.swap(false, Ordering::AcqRel);
        if was_up && started.elapsed() >= STEADY {
            delay = backoff.initial;
            logged = false;
        }
        if logged {
            tracing::trace!(runtime = shared.source.name(), "still not reachable: {err}");
        } else if was_up {
            tracing::warn!(
                runtime = shared.source.name(),
                socket = %shared.socket.display(),
                "lost the container runtime ({err}); keeping what it told, retrying with back-off"
            );
        } else {
            tracing::info!(
                runtime = shared.source.name(),
                socket = %shared.socket.display(),
                "container runtime not reachable ({err}); retrying with back-off up to {:?}",
                backoff.max
            );
        }
        if !logged {
            // The next connection is news.
            shared.announce.store(true, Ordering::Release);
        }
        logged = true;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut stop) => return,
        }
        delay = (delay * 2).min(backoff.max);
    }
}

/// Aborts a spawned helper task (an event-stream reader) when its session ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Container ids go into request paths: refuse anything but the characters runtimes use.
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && id != "."
        && id != ".."
}

/// One runtime answer read as the clients read it, for `collector-core/fuzz`: `kind` picks
/// the answer (Docker list, inspect or event stream, CRI-O inspect, containerd frames), and
/// `chunks` is the body as it arrived. Returns how many containers, events or messages it
/// held.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_answer(kind: u8, chunks: &[&[u8]]) -> usize {
    let whole = chunks.concat();
    match kind % 5 {
        #[cfg(feature = "docker")]
        0 => docker::list_table(&whole).map_or(0, |t| t.len()),
        #[cfg(feature = "docker")]
        1 => docker::inspect_metadata(&whole).map_or(0, |_| 1),
        #[cfg(feature = "docker")]
        2 => docker::fuzz_events(chunks),
        #[cfg(feature = "crio")]
        3 => crio::info_metadata(&whole).map_or(0, |_| 1),
        #[cfg(feature = "containerd")]
        4 => containerd::fuzz_frames(chunks),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{classify, Kind};

    fn providers_with(source: Source) -> (Arc<Providers>, Arc<Shared>) {
        let mut config = Config::none();
        match source {
            Source::Docker => config.docker = Some(EngineConfig::docker()),
            Source::Podman => config.podman = Some(EngineConfig::podman()),
            Source::Containerd => config.containerd = Some(ContainerdConfig::default()),
            Source::Crio => config.crio = Some(CrioConfig::default()),
        }
        let (p, _tasks) = Providers::build(config);
        let s = p.sources[0].clone();
        (p, s)
    }

    const ID: &str = "c1a97e2c6fcca05af093095dbb1a37ca2261b81d742d9f55447de73add9c5344";

    #[test]
    fn lookup_reads_the_table_and_generation_moves_on_change_only() {
        let (p, s) = providers_with(Source::Docker);
        let ident = classify(&format!("/docker/{ID}"), &[]);
        assert_eq!(p.lookup(&ident, &format!("/docker/{ID}")), None);
        let g0 = p.generation();
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "x".to_string());
        s.upsert(ID, "", metadata("/t1", "bb:1", labels.clone()));
        let g1 = p.generation();
        assert!(g1 > g0);
        let m = p.lookup(&ident, "/docker/x").expect("known");
        assert_eq!(m.name.as_deref(), Some("t1"));
        assert_eq!(m.image.as_deref(), Some("bb:1"));
        assert_eq!(m.labels, labels);
        s.upsert(ID, "", metadata("/t1", "bb:1", labels.clone()));
        assert_eq!(p.generation(), g1, "same data, same generation");
        s.remove(ID, "");
        assert!(p.generation() > g1);
        assert_eq!(p.lookup(&ident, "/docker/x"), None);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn containerd_namespace_from_the_cgroup_path() {
        let (p, s) = providers_with(Source::Containerd);
        s.upsert("c1", "default", metadata("c1", "img:a", BTreeMap::new()));
        s.upsert("c1", "test", metadata("c1", "img:b", BTreeMap::new()));
        s.upsert(ID, "k8s.io", metadata(ID, "img:k", BTreeMap::new()));
        let ns = vec!["default".to_string(), "test".to_string()];
        let i = classify("/test/c1", &ns);
        assert_eq!(i.kind, Kind::Container);
        let img = |m: Option<Metadata>| m.and_then(|m| m.image);
        assert_eq!(img(p.lookup(&i, "/test/c1")).as_deref(), Some("img:b"));
        let i = classify("/default/c1", &ns);
        assert_eq!(img(p.lookup(&i, "/default/c1")).as_deref(), Some("img:a"));
        let pod = "/kubepods.slice/kubepods-pod0f6c1d2e_3a4b_4c5d_8e9f_0a1b2c3d4e5f.slice";
        let cg = format!("{pod}/cri-containerd-{ID}.scope");
        let i = classify(&cg, &ns);
        assert_eq!(img(p.lookup(&i, &cg)).as_deref(), Some("img:k"));
    }

    #[test]
    fn unknown_runtime_tries_every_source_and_own_runtime_wins() {
        let mut config = Config::none();
        config.docker = Some(EngineConfig::docker());
        config.containerd = Some(ContainerdConfig::default());
        let (p, _t) = Providers::build(config);
        let docker = &p.sources[0];
        let containerd = &p.sources[1];
        containerd.upsert(ID, "moby", metadata(ID, "", BTreeMap::new()));
        // Kubernetes' cgroupfs driver: the path does not say which runtime.
        let cg = format!("/kubepods/besteffort/pod0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f/{ID}");
        let i = classify(&cg, &[]);
        assert_eq!(i.runtime, None);
        assert_eq!(p.lookup(&i, &cg).and_then(|m| m.name).as_deref(), Some(ID));
        docker.upsert(ID, "", metadata("/web", "nginx", BTreeMap::new()));
        assert_eq!(
            p.lookup(&i, &cg).and_then(|m| m.name).as_deref(),
            Some("web")
        );
        // A Docker cgroup is not named by containerd's `moby` record when docker is followed.
        docker.remove(ID, "");
        let i = classify(&format!("/docker/{ID}"), &[]);
        assert_eq!(p.lookup(&i, ""), None);
    }

    /// Providers of one source, down, whose lookups' wants land in the receiver.
    fn asking(source: Source) -> (Providers, Arc<Shared>, tokio::sync::mpsc::Receiver<Want>) {
        let generation = Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel(WANT_QUEUE);
        let s = Arc::new(Shared {
            source,
            socket: "/nonexistent".into(),
            up: AtomicBool::new(false),
            announce: AtomicBool::new(true),
            table: RwLock::new(Table::new()),
            generation: generation.clone(),
            want: Some(tx),
        });
        let p = Providers {
            sources: vec![s.clone()],
            generation,
            stop: tokio::sync::watch::channel(false).0,
        };
        (p, s, rx)
    }

    #[test]
    fn a_miss_asks_the_runtime_only_when_it_is_up() {
        let (p, s, mut rx) = asking(Source::Crio);
        let cg = format!("/kubepods.slice/x/crio-{ID}.scope");
        let i = classify(&cg, &[]);
        assert_eq!(p.lookup(&i, &cg), None);
        assert!(rx.try_recv().is_err(), "down: nothing asked");
        s.mark_up();
        assert_eq!(p.lookup(&i, &cg), None);
        assert_eq!(rx.try_recv().map(|w| w.id), Ok(ID.to_string()));
        // Cgroups that are no container are never asked about.
        assert_eq!(
            p.lookup(&classify("/system.slice", &[]), "/system.slice"),
            None
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_containerd_miss_names_a_namespace_only_for_a_bare_id_under_it() {
        let (p, s, mut rx) = asking(Source::Containerd);
        s.mark_up();
        let ns = vec!["default".to_string()];
        let asked = |cg: &str, rx: &mut tokio::sync::mpsc::Receiver<Want>| {
            assert_eq!(p.lookup(&classify(cg, &ns), cg), None);
            rx.try_recv().map(|w| (w.id, w.namespace)).expect("asked")
        };
        assert_eq!(
            asked("/default/c1", &mut rx),
            ("c1".to_string(), Some("default".to_string()))
        );
        // Before, `system.slice` was taken for a namespace and the id asked for only there.
        let cg = format!("/system.slice/cri-containerd-{ID}.scope");
        assert_eq!(asked(&cg, &mut rx), (ID.to_string(), None));
    }

    #[test]
    fn ids_safe_in_paths() {
        assert!(safe_id(ID));
        assert!(safe_id("c1"));
        assert!(!safe_id("../x"));
        assert!(!safe_id(".."));
        assert!(!safe_id("a/b"));
        assert!(!safe_id(""));
        assert!(!safe_id("a?b"));
    }
}
