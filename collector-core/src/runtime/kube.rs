//! Kubernetes identity from what kubelet's runtimes put on every container: the labels
//! `io.kubernetes.pod.namespace`, `io.kubernetes.pod.name`, `io.kubernetes.container.name`
//! and `io.kubernetes.pod.uid` (containerd's CRI plugin, CRI-O, cri-dockerd and dockershim all
//! set them), else a dockershim / cri-dockerd container name
//! `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.

use crate::collector::Metadata;

/// The label holding the pod's namespace.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The label holding the pod's name.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// The label holding the pod's UID.
#[cfg(test)]
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// The label holding the container's name within its pod.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// The parts of a dockershim-style name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimName<'a> {
    /// The container's name within its pod.
    pub container: &'a str,
    /// The pod's name.
    pub pod: &'a str,
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's UID.
    pub uid: &'a str,
}

/// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>` (an optional leading `/`). Kubernetes
/// names cannot hold `_`, so the parts split cleanly.
pub fn parse_shim_name(name: &str) -> Option<ShimName<'_>> {
    let rest = name.trim_start_matches('/').strip_prefix("k8s_")?;
    let parts: Vec<&str> = rest.split('_').collect();
    if parts.len() != 5 || parts[..4].iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(ShimName {
        container: parts[0],
        pod: parts[1],
        namespace: parts[2],
        uid: parts[3],
    })
}

/// Fills `namespace`, `pod` and `container` from `meta.labels` (or, lacking them, from a
/// dockershim-style `meta.name`). Fields already set are kept.
pub fn apply(meta: &mut Metadata) {
    let label = |k: &str| meta.labels.get(k).filter(|v| !v.is_empty()).cloned();
    let (mut ns, mut pod, mut container) =
        (label(POD_NAMESPACE), label(POD_NAME), label(CONTAINER_NAME));
    if ns.is_none() && pod.is_none() {
        if let Some(s) = meta.name.as_deref().and_then(parse_shim_name) {
            ns = Some(s.namespace.to_string());
            pod = Some(s.pod.to_string());
            container = container.or_else(|| Some(s.container.to_string()));
        }
    }
    if meta.namespace.is_none() {
        meta.namespace = ns;
    }
    if meta.pod.is_none() {
        meta.pod = pod;
    }
    if meta.container.is_none() {
        meta.container = container;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_labels(pairs: &[(&str, &str)]) -> Metadata {
        Metadata {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Metadata::default()
        }
    }

    #[test]
    fn labels_give_namespace_pod_container() {
        let mut m = with_labels(&[
            (POD_NAMESPACE, "prod"),
            (POD_NAME, "payments-7c9"),
            (CONTAINER_NAME, "api"),
            (POD_UID, "0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"),
        ]);
        apply(&mut m);
        assert_eq!(m.namespace.as_deref(), Some("prod"));
        assert_eq!(m.pod.as_deref(), Some("payments-7c9"));
        assert_eq!(m.container.as_deref(), Some("api"));
        assert_eq!(m.labels.len(), 4, "labels are kept as they are");
    }

    #[test]
    fn a_sandbox_has_a_pod_but_no_container() {
        let mut m = with_labels(&[
            (POD_NAMESPACE, "prod"),
            (POD_NAME, "p"),
            ("io.cri-containerd.kind", "sandbox"),
        ]);
        apply(&mut m);
        assert_eq!((m.pod.as_deref(), m.container), (Some("p"), None));
    }

    #[test]
    fn dockershim_names() {
        let s = parse_shim_name("/k8s_api_payments-7c9_prod_0f6c1d2e-3a4b_1").unwrap();
        assert_eq!(
            (s.container, s.pod, s.namespace, s.uid),
            ("api", "payments-7c9", "prod", "0f6c1d2e-3a4b")
        );
        assert!(parse_shim_name("k8s_a_b_c").is_none());
        assert!(parse_shim_name("web").is_none());
        assert!(parse_shim_name("k8s__p_n_u_0").is_none());
        let mut m = Metadata {
            name: Some("k8s_POD_payments-7c9_prod_0f6c_0".into()),
            ..Metadata::default()
        };
        apply(&mut m);
        assert_eq!(
            (
                m.namespace.as_deref(),
                m.pod.as_deref(),
                m.container.as_deref()
            ),
            (Some("prod"), Some("payments-7c9"), Some("POD"))
        );
        let mut m = Metadata::default();
        apply(&mut m);
        assert_eq!(m, Metadata::default());
    }
}
