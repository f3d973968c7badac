//! The seam between the collector and container runtimes. A runtime client (Docker, containerd,
//! CRI-O) keeps its own table of what it knows and answers lookups from it; the collector asks
//! during a sweep and never waits on a runtime.

use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// Answers "what is this container?" from memory. Implementations must not block: a sweep
/// calls `lookup` for containers whose metadata is not yet known, or when `generation` moved.
pub trait MetadataProvider: Send + Sync + std::fmt::Debug {
    /// Metadata for a cgroup, by what its path says (runtime, container id) and the path itself.
    fn lookup(&self, identity: &Identity, cgroup_id: &str) -> Option<Metadata>;

    /// Changes whenever the provider learns something new, so the collector can look again.
    fn generation(&self) -> u64;
}

/// What a container runtime says about a container. Empty until a runtime has answered; the
/// container is still reported by its cgroup path meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The runtime's name for the container (Docker's without the leading `/`, containerd's id).
    pub name: Option<String>,
    /// The image reference the runtime reports.
    pub image: Option<String>,
    /// The Kubernetes namespace (from the runtime's labels, or a dockershim-style name).
    pub namespace: Option<String>,
    /// The Kubernetes pod name.
    pub pod: Option<String>,
    /// The container's name within its Kubernetes pod.
    pub container: Option<String>,
    /// The runtime's labels on the container (cAdvisor's `container_label_*`).
    pub labels: std::collections::BTreeMap<String, String>,
}
