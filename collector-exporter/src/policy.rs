//! An optional policy: which images and names may run, and what each image may run, listen
//! on and connect to. A running container outside the first is reported
//! (`container_policy_violation`) and raises one event when first seen; a process, a
//! listening port or a peer outside the second is a security finding (`unexpected_process`,
//! `new_listener`, `unauthorized_connection`), judged by the core
//! (`collector_core::security::policy`).
//!
//! ```toml
//! allowed_images = ["registry.example.com/*", "busybox:1.36"]
//! allowed_names = ["web-*", "db-?"]
//!
//! [[image]]
//! image = "registry.example.com/web:*"
//! allowed_processes = ["nginx", "/docker-entrypoint.sh", "sh"]
//! allowed_listen_ports = [80, 443]
//! allowed_peers = [{ container = "api-*", ports = [8080] }, { cidr = "10.96.0.10/32", ports = [53] }]
//! ```
//! Patterns are globs: `*` any run of characters, `?` one. An empty or absent list allows
//! everything. Only containers a runtime has named are judged (raw cgroups have no image).

use std::path::Path;

use collector_core::security::policy::glob;
use collector_core::security::{ImagePolicy, ProcessPolicy};
use collector_core::{Container, EventKind, Kind};
use serde::Deserialize;

use crate::error::toml_error;

/// The event a container outside the policy raises, once.
pub const VIOLATION: EventKind = EventKind::Raised("policy_violation");

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub allowed_images: Vec<String>,
    #[serde(default)]
    pub allowed_names: Vec<String>,
    /// What each image may run and listen on (`[[image]]` tables).
    #[serde(default)]
    pub image: Vec<ImagePolicy>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let p: Policy = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), toml_error(&text, &e)))?;
        if let Some(bad) = p
            .allowed_images
            .iter()
            .chain(&p.allowed_names)
            .map(String::as_str)
            .find(|g| g.is_empty())
            .or(p.processes().empty_pattern())
        {
            return Err(format!("{}: empty pattern {bad:?}", path.display()));
        }
        Ok(p)
    }

    /// The per-image part, for the core's security signals.
    pub fn processes(&self) -> ProcessPolicy {
        ProcessPolicy {
            images: self.image.clone(),
        }
    }

    /// Why a container breaks the policy, if it does.
    pub fn violation(&self, c: &Container) -> Option<String> {
        if c.identity.kind != Kind::Container {
            return None;
        }
        let image = c.meta.image.as_deref()?;
        if !self.allowed_images.is_empty() && !self.allowed_images.iter().any(|g| glob(g, image)) {
            return Some(format!("image {image:?} is not allowed"));
        }
        if let Some(name) = c.meta.name.as_deref() {
            if !self.allowed_names.is_empty() && !self.allowed_names.iter().any(|g| glob(g, name)) {
                return Some(format!("name {name:?} is not allowed"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_processes_in_one_file() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "allowed_images = [\"nginx:*\"]\n[[image]]\nimage = \"nginx:*\"\nallowed_processes = [\"nginx\"]\nallowed_listen_ports = [80]\n",
        )
        .expect("a policy file");
        let p = Policy::load(&path).expect("loads");
        assert_eq!(p.allowed_images, ["nginx:*"]);
        let img = p.processes();
        let img = img.for_image("nginx:1.25").expect("nginx's entry");
        assert_eq!(img.allowed_listen_ports, [80]);
        std::fs::write(
            &path,
            "[[image]]\nimage = \"x\"\nallowed_processes = [\"\"]\n",
        )
        .expect("a policy file");
        let e = Policy::load(&path).expect_err("an empty glob");
        assert!(e.contains("empty pattern"), "{e}");
        std::fs::write(&path, "[[image]]\nimage = \"x\"\nports = [1]\n").expect("a policy file");
        let e = Policy::load(&path).expect_err("an unknown key");
        assert!(e.contains("line 3:") && e.contains("ports"), "{e}");
        std::fs::write(
            &path,
            "[[image]]\nimage = \"x\"\nallowed_peers = [{ cidr = \"10.0.0.0/8\", ports = [5432] }, { image = \"redis:*\" }]\n",
        )
        .expect("a policy file");
        let p = Policy::load(&path).expect("loads");
        let peers = &p.processes().images[0].allowed_peers;
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].ports, [5432]);
        std::fs::write(
            &path,
            "[[image]]\nimage = \"x\"\nallowed_peers = [{ cidr = \"10.0.0.0\" }]\n",
        )
        .expect("a policy file");
        let e = Policy::load(&path).expect_err("a range without its length");
        assert!(e.contains("line 3:"), "{e}");
    }
}
