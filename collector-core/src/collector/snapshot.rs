//! What a sweep returns.

use serde::Serialize;

use crate::error::Error;
use crate::events::Event;
use crate::hierarchy::Setup;
use crate::identity::Identity;
use crate::metadata::Metadata;
use crate::stats::ContainerStats;

/// One container in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Container {
    /// The cgroup path, as cAdvisor's `id` label (`/docker/<id>`, `/` for the machine).
    pub id: String,
    /// What the cgroup path says: kind, runtime, container id, pod.
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
    /// The figures read for it in this sweep.
    pub stats: ContainerStats,
}

/// One sweep's result: everything that could be read, and what could not.
///
/// ```
/// use collector_core::{Collector, Config, EventKind};
///
/// let mut collector = Collector::new(Config::default())?;
/// let snapshot = collector.sweep();
/// for e in &snapshot.events {
///     match e.kind {
///         EventKind::Started | EventKind::Stopped => println!("{} {}", e.kind.name(), e.id),
///         EventKind::OomKill => println!("{} lost {} processes to the OOM killer", e.id, e.count),
///         EventKind::Finding(kind) => println!("{} in {}: {:?}", kind.name(), e.id, e.finding),
///         EventKind::Raised(name) => println!("{name} in {}", e.id),
///     }
/// }
/// // Everything in it serializes, as the exporter's JSON API shows it.
/// let json = serde_json::to_string(&snapshot).expect("serializable");
/// assert!(json.contains("\"containers\""));
/// # Ok::<(), collector_core::Error>(())
/// ```
#[derive(Debug, Default, Serialize)]
pub struct Snapshot {
    /// When the sweep started (Unix milliseconds).
    pub timestamp_ms: u64,
    /// The host's cgroup setup; `None` only in an empty default snapshot.
    pub setup: Option<Setup>,
    /// The containers followed, the machine's own cgroup (`/`) among them.
    pub containers: Vec<Container>,
    /// Figures about the machine itself.
    pub machine: crate::machine::MachineStats,
    /// Lifecycle events noticed in this sweep.
    pub events: Vec<Event>,
    /// Errors met in the sweep; the containers they concern are still in `containers` with
    /// the fields that could be read.
    #[serde(serialize_with = "errors_as_text")]
    pub errors: Vec<Error>,
    /// How long the sweep took, in microseconds.
    pub duration_us: u64,
}

fn errors_as_text<S: serde::Serializer>(
    errs: &[Error],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(errs.iter().map(|e| e.to_string()))
}

impl Snapshot {
    /// The container with cgroup path `id`, if in this snapshot.
    pub fn get(&self, id: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.id == id)
    }
}
