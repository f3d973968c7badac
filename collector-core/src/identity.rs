//! What a cgroup is, judged from its path alone: which runtime made it, the container id, and
//! the Kubernetes pod it belongs to. Runtime metadata (names, images) comes later, from the
//! runtimes' APIs; this is what is known without them.

use serde::{Deserialize, Serialize};

/// The runtime that created a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// Docker (`/docker/<id>`, `docker-<id>.scope`).
    Docker,
    /// containerd, standalone or under Kubernetes (`cri-containerd-<id>.scope`).
    Containerd,
    /// CRI-O (`crio-<id>.scope`).
    Crio,
    /// Podman (`libpod-<id>.scope`).
    Podman,
}

impl Runtime {
    /// The runtime's name as a label value (`docker`, `containerd`, `crio`, `podman`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
        }
    }
}

/// What kind of cgroup this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The root of the hierarchy: the whole machine.
    Root,
    /// A container made by a runtime (the runtime may be unknown for Kubernetes' cgroupfs driver).
    Container,
    /// A Kubernetes pod's cgroup.
    Pod,
    /// A systemd service, scope or slice.
    Systemd,
    /// Any other cgroup (cAdvisor's raw containers).
    Raw,
}

/// Everything known about a cgroup from its path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// What kind of cgroup it is.
    pub kind: Kind,
    /// The runtime that made it, when the path tells; `None` for the root, pods, systemd and raw
    /// cgroups.
    pub runtime: Option<Runtime>,
    /// The runtime's container id (64 hex digits for Docker, containerd and CRI-O).
    pub container_id: Option<String>,
    /// The pod's uid, with dashes, when the cgroup is or lies inside a Kubernetes pod.
    pub pod_uid: Option<String>,
    /// `guaranteed`, `burstable` or `besteffort` for Kubernetes cgroups.
    pub qos_class: Option<String>,
}

/// Classifies a cgroup id (its path in the hierarchy, like `/docker/<id>`).
/// `containerd_namespaces` are the first path components that standalone containerd uses
/// (`/<namespace>/<id>`).
pub fn classify(id: &str, containerd_namespaces: &[String]) -> Identity {
    let mut out = Identity {
        kind: Kind::Raw,
        runtime: None,
        container_id: None,
        pod_uid: None,
        qos_class: None,
    };
    if id == "/" || id.is_empty() {
        out.kind = Kind::Root;
        return out;
    }
    let parts: Vec<&str> = id.split('/').filter(|p| !p.is_empty()).collect();
    let Some(&last) = parts.last() else {
        out.kind = Kind::Root;
        return out;
    };
    let parent = parts.len().checked_sub(2).map(|i| parts[i]);

    // Kubernetes: `kubepods[/qos]/pod<uid>[/<container>]` (cgroupfs) or
    // `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/<runtime>-<id>.scope`.
    let in_kubepods = parts.first().is_some_and(|p| p.starts_with("kubepods"));
    let mut pod_index = None;
    if in_kubepods {
        out.qos_class = Some("guaranteed".into());
        for (i, p) in parts.iter().enumerate() {
            let stem = p.strip_suffix(".slice").unwrap_or(p);
            for q in ["burstable", "besteffort"] {
                if stem == q || stem == format!("kubepods-{q}") {
                    out.qos_class = Some(q.into());
                }
            }
            if let Some(uid) = pod_uid(stem) {
                out.pod_uid = Some(uid);
                pod_index = Some(i);
            }
        }
    }

    if let Some((runtime, cid)) = runtime_scope(last) {
        out.kind = Kind::Container;
        out.runtime = Some(runtime);
        out.container_id = Some(cid.to_string());
    } else if parent == Some("docker") && is_hex_id(last) {
        out.kind = Kind::Container;
        out.runtime = Some(Runtime::Docker);
        out.container_id = Some(last.to_string());
    } else if let Some(cid) = last.strip_prefix("libpod-").filter(|c| is_hex_id(c)) {
        // Podman with the cgroupfs manager: `libpod_parent/libpod-<id>`.
        out.kind = Kind::Container;
        out.runtime = Some(Runtime::Podman);
        out.container_id = Some(cid.to_string());
    } else if pod_index.is_some_and(|i| i + 1 == parts.len() - 1) && is_hex_id(last) {
        // cgroupfs driver: the container directory is the bare id under the pod.
        out.kind = Kind::Container;
        out.container_id = Some(last.to_string());
    } else if pod_index == Some(parts.len() - 1) {
        out.kind = Kind::Pod;
    } else if parts.len() == 2 && containerd_namespaces.iter().any(|n| n == parts[0]) {
        out.kind = Kind::Container;
        out.runtime = Some(Runtime::Containerd);
        out.container_id = Some(last.to_string());
    } else if last.ends_with(".service") || last.ends_with(".slice") || last.ends_with(".scope") {
        out.kind = Kind::Systemd;
    }
    out
}

/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`.
fn runtime_scope(name: &str) -> Option<(Runtime, &str)> {
    let stem = name.strip_suffix(".scope")?;
    let (runtime, id) = if let Some(id) = stem.strip_prefix("docker-") {
        (Runtime::Docker, id)
    } else if let Some(id) = stem.strip_prefix("cri-containerd-") {
        (Runtime::Containerd, id)
    } else if let Some(id) = stem.strip_prefix("crio-") {
        (Runtime::Crio, id)
    } else if let Some(id) = stem.strip_prefix("libpod-") {
        (Runtime::Podman, id)
    } else {
        return None;
    };
    // `crio-conmon-<id>.scope` and `libpod-conmon-<id>.scope` are monitors, not containers.
    is_hex_id(id).then_some((runtime, id))
}

/// `pod<uid>` (cgroupfs) or `kubepods[-qos]-pod<uid_with_underscores>` (systemd).
fn pod_uid(stem: &str) -> Option<String> {
    let raw = match stem.rfind("pod") {
        Some(i) if i == 0 || stem[..i].ends_with('-') => &stem[i + 3..],
        _ => return None,
    };
    let uid = raw.replace('_', "-");
    let ok = uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(uid)
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "c1a97e2c6fcca05af093095dbb1a37ca2261b81d742d9f55447de73add9c5344";

    fn c(id: &str) -> Identity {
        classify(id, &["k8s.io".to_string(), "moby".to_string()])
    }

    #[test]
    fn docker_both_drivers() {
        let i = c(&format!("/docker/{ID}"));
        assert_eq!(
            (i.kind, i.runtime),
            (Kind::Container, Some(Runtime::Docker))
        );
        assert_eq!(i.container_id.as_deref(), Some(ID));
        let i = c(&format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(i.runtime, Some(Runtime::Docker));
        assert_eq!(c("/docker").kind, Kind::Raw);
        assert_eq!(c("/docker/notanid").kind, Kind::Raw);
    }

    #[test]
    fn kubernetes_systemd_driver() {
        let pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f6c1d2e_3a4b_4c5d_8e9f_0a1b2c3d4e5f.slice";
        let p = c(pod);
        assert_eq!(p.kind, Kind::Pod);
        assert_eq!(
            p.pod_uid.as_deref(),
            Some("0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f")
        );
        assert_eq!(p.qos_class.as_deref(), Some("burstable"));
        let i = c(&format!("{pod}/cri-containerd-{ID}.scope"));
        assert_eq!(
            (i.kind, i.runtime),
            (Kind::Container, Some(Runtime::Containerd))
        );
        assert_eq!(i.pod_uid, p.pod_uid);
        let i = c(&format!("{pod}/crio-{ID}.scope"));
        assert_eq!(i.runtime, Some(Runtime::Crio));
        assert_eq!(
            c(&format!("{pod}/crio-conmon-{ID}.scope")).kind,
            Kind::Systemd
        );
        assert_eq!(c("/kubepods.slice").kind, Kind::Systemd);
        let g = c("/kubepods.slice/kubepods-pod0f6c1d2e_3a4b_4c5d_8e9f_0a1b2c3d4e5f.slice");
        assert_eq!(
            (g.kind, g.qos_class.as_deref()),
            (Kind::Pod, Some("guaranteed"))
        );
    }

    #[test]
    fn kubernetes_cgroupfs_driver() {
        let pod = "/kubepods/besteffort/pod0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f";
        let p = c(pod);
        assert_eq!(
            (p.kind, p.qos_class.as_deref()),
            (Kind::Pod, Some("besteffort"))
        );
        let i = c(&format!("{pod}/{ID}"));
        assert_eq!((i.kind, i.runtime), (Kind::Container, None));
        assert_eq!(
            i.pod_uid.as_deref(),
            Some("0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f")
        );
    }

    #[test]
    fn podman_containerd_systemd_raw_root() {
        assert_eq!(
            c(&format!("/libpod_parent/libpod-{ID}")).runtime,
            Some(Runtime::Podman)
        );
        assert_eq!(
            c(&format!("/machine.slice/libpod-{ID}.scope")).runtime,
            Some(Runtime::Podman)
        );
        let i = c("/k8s.io/abc");
        assert_eq!(
            (i.kind, i.runtime),
            (Kind::Container, Some(Runtime::Containerd))
        );
        assert_eq!(c("/k8s.io/abc/def").kind, Kind::Raw);
        assert_eq!(c("/system.slice/containerd.service").kind, Kind::Systemd);
        assert_eq!(c("/user.slice").kind, Kind::Systemd);
        assert_eq!(c("/mygroup/x").kind, Kind::Raw);
        assert_eq!(c("/").kind, Kind::Root);
    }
}
