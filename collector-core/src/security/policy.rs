//! Which programs, listening ports and peers an image is expected to have. A process outside
//! its image's `allowed_processes` is an `unexpected_process` finding; a listening port
//! outside its `allowed_listen_ports` a `new_listener` one, even at the container's first
//! read; a connection it opened to a peer no rule of `allowed_peers` matches an
//! `unauthorized_connection` one.
//!
//! ```toml
//! [[image]]
//! image = "nginx:*"
//! allowed_processes = ["nginx", "/docker-entrypoint.sh", "sh"]
//! allowed_listen_ports = [80, 443]
//! allowed_peers = [{ container = "api-*", ports = [8080] }, { cidr = "10.96.0.10/32", ports = [53] }]
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
    /// Ports it may listen on; empty allows any.
    #[serde(default)]
    pub allowed_listen_ports: Vec<u16>,
    /// Whom it may open connections to: a peer is allowed when one rule matches it.
    #[serde(default)]
    pub allowed_peers: Vec<PeerRule>,
}

/// One allowed kind of peer. Every field given must match; `ports` empty is any port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRule {
    /// The peer's address is in this range.
    #[serde(default)]
    pub cidr: Option<ipnet::IpNet>,
    /// The port the connection serves (the remote one: the container opened it).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// A glob over the runtime name of the container at the peer's address, on this node.
    #[serde(default)]
    pub container: Option<String>,
    /// A glob over that container's image.
    #[serde(default)]
    pub image: Option<String>,
}

/// The peer a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct PeerFacts<'a> {
    /// The peer's address.
    pub addr: std::net::IpAddr,
    /// The port the connection serves (the peer's, for a connection the container opened).
    pub port: u16,
    /// The container at that address, when it is on this node: its name and image, where a
    /// runtime has named them.
    pub container: Option<(Option<&'a str>, Option<&'a str>)>,
}

/// Per-image expectations, first match wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessPolicy {
    /// One entry per image (`[[image]]` in the file), tried in order.
    #[serde(default, rename = "image")]
    pub images: Vec<ImagePolicy>,
}

impl ProcessPolicy {
    /// No image has a policy.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The first policy whose `image` glob matches this image reference; `None` when none does.
    pub fn for_image(&self, image: &str) -> Option<&ImagePolicy> {
        self.images.iter().find(|p| glob(&p.image, image))
    }

    /// The first empty glob, which would be a mistake (it matches only the empty string).
    pub fn empty_pattern(&self) -> Option<&str> {
        self.images
            .iter()
            .flat_map(|p| {
                let peers = p
                    .allowed_peers
                    .iter()
                    .flat_map(|r| r.container.iter().chain(&r.image));
                std::iter::once(&p.image)
                    .chain(&p.allowed_processes)
                    .chain(peers)
            })
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

    /// Whether it may listen on this port: any port when `allowed_listen_ports` is empty.
    pub fn allows_port(&self, port: u16) -> bool {
        self.allowed_listen_ports.is_empty() || self.allowed_listen_ports.contains(&port)
    }

    /// Whether it says anything about listening ports.
    pub fn limits_ports(&self) -> bool {
        !self.allowed_listen_ports.is_empty()
    }

    /// Whether it says anything about peers.
    pub fn limits_peers(&self) -> bool {
        !self.allowed_peers.is_empty()
    }

    /// Whether a rule names containers by name or image: a peer container the runtime has
    /// not named yet cannot be judged.
    pub fn names_peers(&self) -> bool {
        self.allowed_peers
            .iter()
            .any(|r| r.container.is_some() || r.image.is_some())
    }

    /// Whether the container may have opened a connection to this peer.
    pub fn allows_peer(&self, peer: &PeerFacts<'_>) -> bool {
        self.allowed_peers.is_empty() || self.allowed_peers.iter().any(|r| r.matches(peer))
    }
}

impl PeerRule {
    fn matches(&self, peer: &PeerFacts<'_>) -> bool {
        let (name, image) = peer.container.unwrap_or((None, None));
        let named = |glob_: &Option<String>, v: Option<&str>| match glob_ {
            None => true,
            Some(g) => v.is_some_and(|v| glob(g, v)),
        };
        self.cidr.is_none_or(|n| n.contains(&peer.addr))
            && (self.ports.is_empty() || self.ports.contains(&peer.port))
            && named(&self.container, name)
            && named(&self.image, image)
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
    fn peers_by_range_port_name_and_image() {
        let p: ProcessPolicy = toml::from_str(
            "[[image]]\nimage = \"api:*\"\nallowed_peers = [\n  { cidr = \"10.96.0.10/32\", ports = [53] },\n  { container = \"db-*\", ports = [5432] },\n  { image = \"redis:*\" },\n]\n",
        )
        .expect("a policy");
        let api = p.for_image("api:1").expect("api's entry");
        assert!(api.limits_peers() && api.names_peers());
        let peer =
            |a: [u8; 4], port: u16, c: Option<(Option<&'static str>, Option<&'static str>)>| {
                PeerFacts {
                    addr: std::net::IpAddr::from(a),
                    port,
                    container: c,
                }
            };
        assert!(api.allows_peer(&peer([10, 96, 0, 10], 53, None)));
        assert!(!api.allows_peer(&peer([10, 96, 0, 10], 80, None)));
        assert!(!api.allows_peer(&peer([10, 96, 0, 11], 53, None)));
        assert!(api.allows_peer(&peer([10, 1, 0, 5], 5432, Some((Some("db-0"), None)))));
        assert!(!api.allows_peer(&peer([10, 1, 0, 5], 5433, Some((Some("db-0"), None)))));
        assert!(!api.allows_peer(&peer([10, 1, 0, 5], 5432, Some((None, None)))));
        assert!(api.allows_peer(&peer(
            [10, 1, 0, 6],
            6379,
            Some((Some("cache"), Some("redis:7")))
        )));
        assert!(!api.allows_peer(&peer([192, 0, 2, 1], 443, None)));
        // No rules: anything.
        assert!(ImagePolicy::default().allows_peer(&peer([192, 0, 2, 1], 443, None)));
        assert!(toml::from_str::<ProcessPolicy>(
            "[[image]]\nimage = \"x\"\nallowed_peers = [{ cidr = \"10.0.0.0/33\" }]\n"
        )
        .is_err());
        assert!(toml::from_str::<ProcessPolicy>(
            "[[image]]\nimage = \"x\"\nallowed_peers = [{ host = \"db\" }]\n"
        )
        .is_err());
        let empty: ProcessPolicy =
            toml::from_str("[[image]]\nimage = \"x\"\nallowed_peers = [{ container = \"\" }]\n")
                .expect("parses");
        assert_eq!(empty.empty_pattern(), Some(""));
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
