//! Which programs and listening ports an image is expected to have. A process outside its
//! image's `allowed_processes` is an `unexpected_process` finding; a listening port outside
//! its `allowed_listen_ports` a `new_listener` one, even at the container's first read.
//!
//! ```toml
//! [[image]]
//! image = "nginx:*"
//! allowed_processes = ["nginx", "/docker-entrypoint.sh", "sh"]
//! allowed_listen_ports = [80, 443]
//! ```
//! The first entry whose `image` glob matches applies; an empty or absent list allows
//! everything. Only containers a runtime has named (with an image) are judged.

use serde::{Deserialize, Serialize};

/// The expectations for the images one glob matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePolicy {
    /// A glob over the image reference (`*` any run of characters, `?` one).
    pub image: String,
    /// Globs over a process's `comm`, its executable's path or that path's last part.
    #[serde(default)]
    pub allowed_processes: Vec<String>,
    #[serde(default)]
    pub allowed_listen_ports: Vec<u16>,
}

/// Per-image expectations, first match wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessPolicy {
    #[serde(default, rename = "image")]
    pub images: Vec<ImagePolicy>,
}

impl ProcessPolicy {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn for_image(&self, image: &str) -> Option<&ImagePolicy> {
        self.images.iter().find(|p| glob(&p.image, image))
    }

    /// The first empty glob, which would be a mistake (it matches only the empty string).
    pub fn empty_pattern(&self) -> Option<&str> {
        self.images
            .iter()
            .flat_map(|p| std::iter::once(&p.image).chain(&p.allowed_processes))
            .find(|g| g.is_empty())
            .map(String::as_str)
    }
}

impl ImagePolicy {
    /// Whether a process may run: a glob matches its `comm`, its executable's path or that
    /// path's last part. A script started through its `#!` line runs as its interpreter
    /// (`exe` `/usr/bin/dash`, `comm` the script's name cut to 15 bytes); the kernel passes
    /// the script's path as the next argument (after the interpreter's own, if any), so a
    /// glob that is an absolute path also matches the first absolute path among the two
    /// arguments after the program.
    pub fn allows_process(&self, comm: &str, exe: &str, cmdline: &str) -> bool {
        let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
        let base = exe.rsplit('/').next().unwrap_or(exe);
        let script = cmdline
            .split(' ')
            .skip(1)
            .take(2)
            .find(|a| a.starts_with('/'));
        self.allowed_processes.is_empty()
            || self.allowed_processes.iter().any(|g| {
                glob(g, comm)
                    || glob(g, exe)
                    || (!base.is_empty() && glob(g, base))
                    || (g.starts_with('/') && script.is_some_and(|s| glob(g, s)))
            })
    }

    pub fn allows_port(&self, port: u16) -> bool {
        self.allowed_listen_ports.is_empty() || self.allowed_listen_ports.contains(&port)
    }

    /// Whether it says anything about listening ports.
    pub fn limits_ports(&self) -> bool {
        !self.allowed_listen_ports.is_empty()
    }
}

/// Whether a process is runc's own init (`runc init`), which lives in the container's cgroup
/// for the moment between the cgroup join and its exec of the container's program (at each
/// container start and each `docker exec`): the runtime's, not the image's, so no policy
/// names it. `comm` is `runc`, `exe` or one of nsexec's stages (`runc:[2:INIT]`); the
/// command line is the runtime's path and `init`.
///
/// A program can dress up as it, like as any allowed name; it then escapes only the policy
/// (the rules still look at it), and a walk looks at it again at each interval.
pub fn is_runtime_init(comm: &str, cmdline: &str) -> bool {
    let comm_ok = comm == "runc" || comm == "exe" || comm.starts_with("runc:[");
    let mut args = cmdline.split(' ');
    let runtime = args
        .next()
        .is_some_and(|a| a.rsplit('/').next().is_some_and(|b| b.ends_with("runc")));
    comm_ok && runtime && args.next() == Some("init") && args.next().is_none()
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

    #[test]
    fn first_matching_image_applies() {
        let p: ProcessPolicy = toml::from_str(
            "[[image]]\nimage = \"nginx:*\"\nallowed_processes = [\"nginx\", \"/docker-entrypoint.sh\"]\nallowed_listen_ports = [80]\n\n[[image]]\nimage = \"*\"\n",
        )
        .expect("a policy");
        let nginx = p.for_image("nginx:1.25").expect("nginx's entry");
        assert!(nginx.allows_process("nginx", "/usr/sbin/nginx", "nginx -g daemon off;"));
        // The entrypoint script, run through `#!/bin/sh` and through `#!/usr/bin/env sh`.
        let script = "/bin/sh /docker-entrypoint.sh nginx";
        assert!(nginx.allows_process("docker-entrypoi", "/usr/bin/dash", script));
        let env = "/usr/bin/env sh /docker-entrypoint.sh nginx";
        assert!(nginx.allows_process("docker-entrypoi", "/usr/bin/env", env));
        assert!(!nginx.allows_process("sh", "/usr/bin/dash", "sh -c id"));
        assert!(!nginx.allows_process("sh", "/usr/bin/dash", "sh /tmp/x.sh"));
        assert!(nginx.allows_port(80) && !nginx.allows_port(8080));
        let other = p.for_image("redis:7").expect("the catch-all");
        assert!(other.allows_process("anything", "/x", "") && other.allows_port(1));
        assert!(ProcessPolicy::default().for_image("x").is_none());
    }

    #[test]
    fn runcs_init_is_the_runtimes() {
        // As a walk and the exec watch met it in Docker 20.10 with runc 1.1.
        assert!(is_runtime_init("runc:[2:INIT]", "runc init"));
        assert!(is_runtime_init("runc", "runc init"));
        assert!(is_runtime_init("exe", "/usr/bin/runc init"));
        assert!(is_runtime_init("runc:[1:CHILD]", "docker-runc init"));
        // The container's own programs.
        assert!(!is_runtime_init("sh", "runc init"));
        assert!(!is_runtime_init("runc", "runc init --debug"));
        assert!(!is_runtime_init("runc", "runc run x"));
        assert!(!is_runtime_init("init", "/sbin/init"));
        assert!(!is_runtime_init("exe", "/tmp/runcx init"));
    }

    #[test]
    fn unknown_keys_and_empty_globs_are_refused() {
        assert!(
            toml::from_str::<ProcessPolicy>("[[image]]\nimage = \"x\"\nallowed = []\n").is_err()
        );
        let p: ProcessPolicy = toml::from_str("[[image]]\nimage = \"\"\n").expect("parses");
        assert_eq!(p.empty_pattern(), Some(""));
    }
}
