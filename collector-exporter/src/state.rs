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

/// A list the sweep thread replaces after each sweep and scrapes read.
#[derive(Debug)]
pub struct Current<T> {
    inner: std::sync::Mutex<Vec<T>>,
}

impl<T> Default for Current<T> {
    fn default() -> Self {
        Current {
            inner: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl<T: Clone> Current<T> {
    pub fn set(&self, v: Vec<T>) {
        match self.inner.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    pub fn get(&self) -> Vec<T> {
        match self.inner.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// The current offenders of the policy.
pub type Violations = Current<Violation>;

/// A container running one of the components critical to the cluster
/// (`--containers.critical`), with the labels that tell it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Critical {
    pub component: String,
    pub id: String,
    pub name: String,
    pub image: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// The critical components' containers, as of the last sweep.
pub type Criticals = Current<Critical>;

/// The component of `names` that container `c` runs, if any: by its Kubernetes container
/// name, its runtime name, or its cgroup's last component (a systemd unit such as
/// `etcd.service`). A Kubernetes container counts only in `kube-system`, where the cluster's
/// own components run: an application's `etcd` in another namespace is not the cluster's.
pub fn critical_component<'a>(
    names: &'a [String],
    c: &collector_core::Container,
) -> Option<&'a str> {
    if c.meta
        .namespace
        .as_deref()
        .is_some_and(|ns| ns != "kube-system")
    {
        return None;
    }
    let last = c.id.rsplit('/').next().unwrap_or("");
    let unit = last.strip_suffix(".service").unwrap_or(last);
    names
        .iter()
        .find(|n| {
            let n = n.as_str();
            c.meta.container.as_deref() == Some(n) || c.meta.name.as_deref() == Some(n) || unit == n
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_by_its_container_name_runtime_name_or_unit() {
        let names: Vec<String> = ["etcd", "kube-apiserver"].map(String::from).to_vec();
        let mut c = collector_core::Container {
            id: "/system.slice/etcd.service".into(),
            identity: collector_core::identity::classify("/system.slice/etcd.service", &[]),
            first_seen_ms: 0,
            created_ms: None,
            idle: false,
            meta: Default::default(),
            stats: Default::default(),
        };
        assert_eq!(critical_component(&names, &c), Some("etcd"));
        c.id = "/kubepods/burstable/pod1/abc".into();
        assert_eq!(critical_component(&names, &c), None);
        c.meta.container = Some("kube-apiserver".into());
        assert_eq!(critical_component(&names, &c), Some("kube-apiserver"));
        c.meta.container = Some("kube-apiserver-proxy".into());
        c.meta.name = Some("etcd".into());
        assert_eq!(critical_component(&names, &c), Some("etcd"));
        c.meta.name = Some("etcd-backup".into());
        assert_eq!(critical_component(&names, &c), None);
        // An application's etcd in its own namespace is not the cluster's.
        c.meta.container = Some("etcd".into());
        c.meta.namespace = Some("shop".into());
        assert_eq!(critical_component(&names, &c), None);
        c.meta.namespace = Some("kube-system".into());
        assert_eq!(critical_component(&names, &c), Some("etcd"));
        assert_eq!(critical_component(&[], &c), None);
    }
}
