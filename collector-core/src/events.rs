//! Lifecycle events the collector notices between sweeps: a container appearing, going, or
//! losing a process to the OOM killer. Each snapshot carries the events of its own sweep.

use serde::{Deserialize, Serialize};

use crate::identity::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// First seen after the collector's first scan (those present at start are not news).
    Started,
    /// Its cgroup is gone.
    Stopped,
    /// The OOM killer killed `count` of its processes since the last sweep.
    OomKill,
    /// It runs outside the configured policy (an image or name not allowed); raised once.
    PolicyViolation,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Stopped => "stopped",
            EventKind::OomKill => "oom_kill",
            EventKind::PolicyViolation => "policy_violation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When the sweep that noticed it started (Unix milliseconds).
    pub time_ms: u64,
    pub kind: EventKind,
    /// The cgroup path.
    pub id: String,
    pub container_id: Option<String>,
    pub runtime: Option<Runtime>,
    pub name: Option<String>,
    pub image: Option<String>,
    /// How many times it happened (OOM kills since the last sweep; 1 otherwise).
    pub count: u64,
}
