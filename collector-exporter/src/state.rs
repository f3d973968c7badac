//! The latest snapshot, shared between the sweep loop (one writer) and the HTTP handlers.

use std::sync::{Arc, RwLock};

use collector_core::Snapshot;

#[derive(Debug, Default)]
pub struct Latest {
    inner: RwLock<Option<Arc<Snapshot>>>,
}

impl Latest {
    pub fn get(&self) -> Option<Arc<Snapshot>> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, s: Arc<Snapshot>) {
        match self.inner.write() {
            Ok(mut g) => *g = Some(s),
            Err(poisoned) => *poisoned.into_inner() = Some(s),
        }
    }
}

/// The recent lifecycle events (bounded) and a count per (event, runtime, image) since start.
#[derive(Debug, Default)]
pub struct EventLog {
    inner: std::sync::Mutex<EventLogInner>,
}

#[derive(Debug, Default)]
struct EventLogInner {
    recent: std::collections::VecDeque<collector_core::Event>,
    counts: std::collections::BTreeMap<(String, String, String), u64>,
}

/// How many events `/api/v1/events` keeps.
pub const RECENT_EVENTS: usize = 1000;

impl EventLog {
    pub fn record(&self, events: &[collector_core::Event]) {
        if events.is_empty() {
            return;
        }
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for e in events {
            let key = (
                e.kind.name().to_string(),
                e.runtime.map(|r| r.name()).unwrap_or("").to_string(),
                e.image.clone().unwrap_or_default(),
            );
            *g.counts.entry(key).or_insert(0) += e.count;
            if g.recent.len() == RECENT_EVENTS {
                g.recent.pop_front();
            }
            g.recent.push_back(e.clone());
        }
    }

    pub fn recent(&self) -> Vec<collector_core::Event> {
        match self.inner.lock() {
            Ok(g) => g.recent.iter().cloned().collect(),
            Err(p) => p.into_inner().recent.iter().cloned().collect(),
        }
    }

    pub fn counts(&self) -> Vec<((String, String, String), u64)> {
        match self.inner.lock() {
            Ok(g) => g.counts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(p) => p
                .into_inner()
                .counts
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

/// A container running outside the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub id: String,
    pub name: String,
    pub image: String,
    pub reason: String,
}

/// The current offenders, replaced after each sweep.
#[derive(Debug, Default)]
pub struct Violations {
    inner: std::sync::Mutex<Vec<Violation>>,
}

impl Violations {
    pub fn set(&self, v: Vec<Violation>) {
        match self.inner.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    pub fn get(&self) -> Vec<Violation> {
        match self.inner.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
