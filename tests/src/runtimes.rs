//! Support for the runtime tests: private daemons started through
//! `scripts/runtime-test-env.sh` in a directory of their own and stopped (by the pid in their
//! pidfile) when dropped, and a collector swept until something shows.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use collector_core::{Collector, Event, Snapshot};

use crate::{require_root, unique, SETUP};

/// The helper script, from the workspace root.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts/runtime-test-env.sh")
}

/// Runs `scripts/runtime-test-env.sh ARGS` and returns its standard output, trimmed; fails the
/// test, naming the set-up command, when it does not succeed.
pub fn env(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
    if !out.status.success() {
        panic!(
            "`runtime-test-env.sh {}` failed ({}); install what it needs with `{SETUP}`:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a runtime's CLI through the script (`ctr DIR ...`, `podman DIR ...`) or `docker -H`,
/// returning stdout; panics with stderr on failure.
pub fn cli(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}); install it with `{SETUP}`"));
    if !out.status.success() {
        panic!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A daemon of one kind (`docker`, `containerd`, `podman`) in a fresh short directory under
/// /tmp; `<kind>-stop DIR` and the directory's removal when dropped.
pub struct Daemon {
    pub kind: &'static str,
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl Daemon {
    /// A directory for the daemon; the daemon itself is started by [`Daemon::start`], so a
    /// test can make it wait.
    pub fn new(kind: &'static str) -> Daemon {
        require_root();
        let tag = unique("");
        // Unix socket paths are short: /tmp/ccrt-<pid>-<nanos>/podman.sock.
        let dir = PathBuf::from(format!("/tmp/ccrt{tag}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let socket = dir.join(match kind {
            "docker" => "docker.sock",
            "containerd" => "containerd.sock",
            "podman" => "podman.sock",
            other => panic!("unknown daemon kind {other}"),
        });
        Daemon { kind, dir, socket }
    }

    pub fn dir(&self) -> &str {
        self.dir.to_str().expect("utf-8 dir")
    }

    /// Starts (or finds) the daemon; returns after it answers.
    pub fn start(&self) {
        let out = env(&[&format!("{}-start", self.kind), self.dir()]);
        let sock = out.trim_start_matches("unix://");
        assert_eq!(Path::new(sock), self.socket, "socket printed by the script");
    }

    /// Exporter flags for this daemon alone (a Docker one): its socket, the other runtimes
    /// off.
    pub fn exporter_flags(&self) -> Vec<String> {
        assert_eq!(
            self.kind, "docker",
            "exporter flags for a {} daemon",
            self.kind
        );
        let mut f: Vec<String> = crate::NO_RUNTIMES.iter().map(|s| s.to_string()).collect();
        f[1] = self.socket.display().to_string();
        f
    }

    /// Stops the daemon (its containers first); the directory stays until drop.
    pub fn stop(&self) {
        env(&[&format!("{}-stop", self.kind), self.dir()]);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args([&format!("{}-stop", self.kind), self.dir()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `docker -H` against the test's daemon; the containers it ran are removed (`rm -f`) when
/// dropped, whatever the outcome (declared after the daemon, so it goes first).
pub struct Docker {
    host: String,
    /// Removed when dropped.
    pub ids: Vec<String>,
}

impl Docker {
    pub fn new(d: &Daemon) -> Docker {
        Docker {
            host: format!("unix://{}", d.socket.display()),
            ids: Vec::new(),
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let mut a = vec!["-H", self.host.as_str()];
        a.extend_from_slice(args);
        cli("docker", &a)
    }

    /// `docker run -d --network none --name NAME IMAGE CMD...`; its id.
    pub fn start(&mut self, name: &str, image: &str, cmd: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--network", "none", "--name", name, image];
        a.extend_from_slice(cmd);
        let id = self.run(&a);
        self.ids.push(id.clone());
        id
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new("docker")
                .args(["-H", &self.host, "rm", "-f", id])
                .output();
        }
    }
}

/// A collector swept over and over, its events kept.
pub struct Sweeper {
    pub collector: Collector,
    pub events: Vec<Event>,
    pub last: Snapshot,
}

impl Sweeper {
    pub fn new(collector: Collector) -> Sweeper {
        Sweeper {
            collector,
            events: Vec::new(),
            last: Snapshot::default(),
        }
    }

    pub fn sweep(&mut self) -> &Snapshot {
        self.last = self.collector.sweep();
        self.events.extend(self.last.events.iter().cloned());
        &self.last
    }

    /// Sweeps every 50 ms until `f` finds what it looks for in a snapshot (or the events so
    /// far); panics with `what` after `timeout`. Returns the time it took.
    pub fn until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Snapshot, &[Event]) -> Option<T>,
    ) -> (T, Duration) {
        let start = Instant::now();
        loop {
            self.sweep();
            if let Some(t) = f(&self.last, &self.events) {
                return (t, start.elapsed());
            }
            if start.elapsed() > timeout {
                let seen: Vec<_> = self
                    .last
                    .containers
                    .iter()
                    .map(|c| (c.id.as_str(), c.meta.name.as_deref()))
                    .collect();
                panic!(
                    "{what}: not seen within {timeout:?}; containers {seen:?}; events {:?}",
                    self.events
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Removes a cgroup directory from every hierarchy when dropped (a standalone containerd
/// namespace's parent, which containerd leaves behind); declare it before the daemon so that
/// the daemon, and its containers, go first.
pub struct CgroupCleanup(pub String);

impl Drop for CgroupCleanup {
    fn drop(&mut self) {
        remove_cgroup_everywhere(&self.0);
    }
}

/// Removes a cgroup directory, and what a runtime made below it, from every mounted
/// hierarchy: a runtime makes its parents in all of them (devices, freezer, the named systemd
/// one), not only in those the collector reads.
pub fn remove_cgroup_everywhere(id: &str) {
    let id = id.trim_start_matches('/');
    if id.is_empty() {
        // Never the root: that would be every cgroup on the host.
        return;
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(at), Some(kind)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if kind == "cgroup" || kind == "cgroup2" {
            remove_tree(&std::path::Path::new(at).join(id));
        }
    }
}

/// Removes `dir` and the cgroups below it, deepest first, each once its tasks have gone.
fn remove_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
            Ok(()) => break,
        }
    }
}
