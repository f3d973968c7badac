//! An optional policy: which images and names may run. A running container outside it is
//! reported (`container_policy_violation`) and raises one event when first seen.
//!
//! ```toml
//! allowed_images = ["registry.example.com/*", "busybox:1.36"]
//! allowed_names = ["web-*", "db-?"]
//! ```
//! Patterns are globs: `*` any run of characters, `?` one. An empty or absent list allows
//! everything. Only containers a runtime has named are judged (raw cgroups have no image).

use std::path::Path;

use collector_core::{Container, EventKind, Kind};
use serde::Deserialize;

use crate::error::one_line;

/// The event a container outside the policy raises, once.
pub const VIOLATION: EventKind = EventKind::Raised("policy_violation");

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub allowed_images: Vec<String>,
    #[serde(default)]
    pub allowed_names: Vec<String>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let p: Policy = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), one_line(e.message())))?;
        if let Some(bad) = p
            .allowed_images
            .iter()
            .chain(&p.allowed_names)
            .find(|g| g.is_empty())
        {
            return Err(format!("{}: empty pattern {bad:?}", path.display()));
        }
        Ok(p)
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

/// `*` and `?` globbing, iterative with one backtrack point (linear in practice).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("registry.example.com/*", "registry.example.com/app:1"));
        assert!(glob("busybox:1.3?", "busybox:1.36"));
        assert!(!glob("busybox:1.3?", "busybox:1.360"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(!glob("web-*", "db-1"));
    }
}
