//! Events the collector notices between sweeps: a container appearing, going, losing a
//! process to the OOM killer, or a security finding in it. Each snapshot carries the events of its own sweep, and
//! the program that embeds the collector may add its own (`EventKind::Raised`) for the sinks to
//! carry with them.

use serde::{Serialize, Serializer};

use crate::identity::Runtime;
use crate::security::{Finding, FindingKind};

/// What happened to a container, as events carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// First seen after the collector's first scan (those present at start are not news).
    Started,
    /// Its cgroup is gone.
    Stopped,
    /// The OOM killer killed `count` of its processes since the last sweep.
    OomKill,
    /// A security finding (`Event::finding` says what and in which process), named as its
    /// kind (`miner_process`, ...).
    Finding(FindingKind),
    /// Raised by the program embedding the collector, named in snake_case (the exporter's
    /// `policy_violation`).
    Raised(&'static str),
}

impl EventKind {
    /// The event's name as the sinks write it (`started`, `oom_kill`, a finding's kind).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Stopped => "stopped",
            EventKind::OomKill => "oom_kill",
            EventKind::Finding(kind) => kind.name(),
            EventKind::Raised(name) => name,
        }
    }
}

/// Written as its name, as the sinks and the JSON API show it.
impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Something that happened to one container, noticed by a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When the sweep that noticed it started (Unix milliseconds).
    pub time_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The cgroup path.
    pub id: String,
    /// The runtime's container id from the cgroup path; `None` for pods, systemd units and raw
    /// cgroups.
    pub container_id: Option<String>,
    /// The runtime that made the cgroup, when the path tells.
    pub runtime: Option<Runtime>,
    /// The runtime's name for the container; `None` until a runtime has answered.
    pub name: Option<String>,
    /// The image the runtime reports; `None` until a runtime has answered.
    pub image: Option<String>,
    /// The Kubernetes namespace, where the runtime named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Kubernetes pod name, where the runtime named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// How many times it happened (OOM kills since the last sweep; 1 otherwise).
    pub count: u64,
    /// What a `Finding` event found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<Box<Finding>>,
}

impl EventKind {
    /// Whether it is a security finding (an alert, to the sinks that tell).
    pub fn is_finding(self) -> bool {
        matches!(self, EventKind::Finding(_))
    }
}
