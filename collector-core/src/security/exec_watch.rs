//! A thread that follows every exec on the host through the kernel's process events
//! (`proc_events`), looks at each new program at once (so one that exits within a
//! millisecond is still seen) and hands what it found to the sweeps through a bounded queue.
//!
//! Bounds: each container gets at most `per_container_per_sec` looks a second (an exec
//! beyond is still counted as started, not looked at); the queue holds `QUEUE` records and
//! drops beyond (counted); a drain takes at most `DRAIN_MAX` events before polling again.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::finding::Finding;
use super::inspect::{cgroup_path, Examiner};
use super::proc_events::{ProcEvent, ProcEvents};
use crate::hierarchy::Setup;

const QUEUE: usize = 8192;
const DRAIN_MAX: usize = 512;
/// How often the thread looks at its stop flag while no event comes.
const TICK: Duration = Duration::from_millis(200);
/// Rate-limit windows are forgotten past this many containers (a churn of short-lived ones).
const WINDOWS_MAX: usize = 4096;

/// One exec, attributed to the cgroup its process was in.
#[derive(Debug)]
pub struct ExecRecord {
    /// When the exec was seen, in Unix milliseconds.
    pub time_ms: u64,
    /// The process that ran the new program, as `proc_root` numbers it.
    pub pid: u32,
    /// The cgroup path of the process, relative to the hierarchy's root.
    pub cgroup: String,
    /// What looking at the process found; empty when it was not looked at.
    pub findings: Vec<Finding>,
    /// The process as looked at, for what the sweep decides (a policy's
    /// `unexpected_process`); `None` when it was not (gone, or over its container's rate).
    pub process: Option<super::finding::ProcessRef>,
}

/// What the watch has done since it started.
#[derive(Debug, Default)]
pub struct ExecCounters {
    /// Exec events received, in followed cgroups or not.
    pub execs: AtomicU64,
    /// Execs whose process was looked at and judged.
    pub examined: AtomicU64,
    /// Execs not looked at: over their container's rate.
    pub rate_limited: AtomicU64,
    /// Execs whose process was gone before its cgroup could be read.
    pub gone: AtomicU64,
    /// Records dropped because the queue was full (sweeps not keeping up).
    pub dropped: AtomicU64,
    /// Times the kernel's queue overflowed and events were lost.
    pub overruns: AtomicU64,
}

/// The running watch; stopped and joined on drop.
#[derive(Debug)]
pub struct ExecWatch {
    rx: Receiver<ExecRecord>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<ExecCounters>,
}

/// What the thread needs.
pub struct WatchConfig {
    /// The `/proc` to read processes from (the host's, as mounted for the exporter).
    pub proc_root: PathBuf,
    /// Which cgroup hierarchy layout the host has, for reading `/proc/<pid>/cgroup`.
    pub setup: Setup,
    /// Reads and judges each process looked at.
    pub examiner: Examiner,
    /// At most this many execs a second looked at per cgroup; beyond, they are counted only.
    pub per_container_per_sec: u32,
    /// Which cgroups the collector follows (`Config::include`, `exclude`, `runtime_only`):
    /// an exec elsewhere (the host's own services, the machine's root cgroup) is not looked
    /// at, so a busy host's builds and cron jobs cost one read each.
    pub include: Vec<String>,
    /// Cgroup path prefixes left out, as the collector's `exclude`.
    pub exclude: Vec<String>,
    /// Look only at runtimes' containers and pods, and cgroups nested in them.
    pub runtime_only: bool,
    /// containerd namespaces whose cgroups count as containers, for `runtime_only`.
    pub containerd_namespaces: Vec<String>,
    /// The host path of this process's cgroup namespace root, when it has one of its own
    /// (`cgroupns::namespace_root`): `/proc/<pid>/cgroup` paths are relative to it.
    pub cgroupns_root: Option<String>,
}

impl WatchConfig {
    fn follows(&self, cgroup: &str) -> bool {
        if cgroup == "/" {
            return false;
        }
        let filter = crate::discover::prefix_filter(&self.include, &self.exclude);
        if filter(cgroup) != crate::discover::Filter::Keep {
            return false;
        }
        if !self.runtime_only {
            return true;
        }
        // A runtime's container, or a cgroup nested in one.
        let mut id = cgroup;
        loop {
            let kind = crate::identity::classify(id, &self.containerd_namespaces).kind;
            if matches!(
                kind,
                crate::identity::Kind::Container | crate::identity::Kind::Pod
            ) {
                return true;
            }
            match id.rfind('/') {
                Some(0) | None => return false,
                Some(cut) => id = &id[..cut],
            }
        }
    }
}

impl ExecWatch {
    /// Subscribes to the process events and starts the thread; the error says why the
    /// events are not available (the caller falls back to polling).
    pub fn start(cfg: WatchConfig) -> std::io::Result<ExecWatch> {
        let events = ProcEvents::open()?;
        if let Err(e) = events.only_execs() {
            tracing::warn!("process events unfiltered ({e}): forks and exits wake the watch too");
        }
        let (tx, rx) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ExecCounters::default());
        let thread = std::thread::Builder::new()
            .name("exec-watch".into())
            .spawn({
                let (stop, counters) = (stop.clone(), counters.clone());
                move || run(events, cfg, tx, &stop, &counters)
            })?;
        Ok(ExecWatch {
            rx,
            stop,
            thread: Some(thread),
            counters,
        })
    }

    /// Takes every record queued since the last call.
    pub fn take(&self, out: &mut Vec<ExecRecord>) {
        out.extend(self.rx.try_iter());
    }

    /// The watch's counters, live.
    pub fn counters(&self) -> &ExecCounters {
        &self.counters
    }
}

impl Drop for ExecWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut events: ProcEvents,
    cfg: WatchConfig,
    tx: SyncSender<ExecRecord>,
    stop: &AtomicBool,
    counters: &ExecCounters,
) {
    let mut batch = Vec::with_capacity(DRAIN_MAX);
    let mut windows: HashMap<String, (Instant, u32)> = HashMap::new();
    let mut scratch = Scratch::default();
    while !stop.load(Ordering::Relaxed) {
        let ready = {
            let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
            let tick = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::NONE);
            poll(&mut fds, tick).unwrap_or(0)
        };
        if ready == 0 {
            continue;
        }
        batch.clear();
        let d = events.drain(&mut batch, DRAIN_MAX);
        if d.lost {
            counters.overruns.fetch_add(1, Ordering::Relaxed);
        }
        for e in &batch {
            let ProcEvent::Exec { tgid, .. } = *e else {
                continue;
            };
            counters.execs.fetch_add(1, Ordering::Relaxed);
            let Some(rec) = look(&cfg, tgid, &mut windows, &mut scratch, counters) else {
                continue;
            };
            match tx.try_send(rec) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                // The collector is gone.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// Reads the exec'd process's cgroup and, within its container's rate, its facts.
fn look(
    cfg: &WatchConfig,
    pid: u32,
    windows: &mut HashMap<String, (Instant, u32)>,
    scratch: &mut Scratch,
    counters: &ExecCounters,
) -> Option<ExecRecord> {
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // Every exec on the host comes here, most in cgroups not followed: reused buffers, so
    // those cost a read and no allocation.
    let Scratch { path, text } = scratch;
    path.clear();
    path.push(&cfg.proc_root);
    path.push(itoa::Buffer::new().format(pid));
    path.push("cgroup");
    text.clear();
    let read = std::fs::File::open(&*path).and_then(|mut f| f.read_to_string(text));
    if read.is_err() {
        counters.gone.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let Some(cgroup) = cgroup_path(text, cfg.setup) else {
        counters.gone.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let resolved;
    let cgroup = match &cfg.cgroupns_root {
        Some(root) => {
            resolved = super::cgroupns::resolve(root, cgroup);
            resolved.as_str()
        }
        None => cgroup,
    };
    if !cfg.follows(cgroup) {
        return None;
    }
    let mut rec = ExecRecord {
        time_ms,
        pid,
        cgroup: cgroup.to_owned(),
        findings: Vec::new(),
        process: None,
    };
    if !within_rate(windows, cgroup, cfg.per_container_per_sec) {
        counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Some(rec);
    }
    let Some(facts) = cfg.examiner.read_facts(pid) else {
        counters.gone.fetch_add(1, Ordering::Relaxed);
        return Some(rec);
    };
    counters.examined.fetch_add(1, Ordering::Relaxed);
    cfg.examiner
        .examine(&facts, "exec", time_ms, &mut rec.findings);
    rec.process = Some(facts.process);
    Some(rec)
}

/// Buffers reused from one exec to the next.
#[derive(Default)]
struct Scratch {
    path: PathBuf,
    text: String,
}

/// A one-second window per cgroup: true while it has had fewer than `max` looks in it.
fn within_rate(windows: &mut HashMap<String, (Instant, u32)>, cgroup: &str, max: u32) -> bool {
    let now = Instant::now();
    if windows.len() >= WINDOWS_MAX && !windows.contains_key(cgroup) {
        windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
    }
    if let Some((start, n)) = windows.get_mut(cgroup) {
        if now.duration_since(*start) >= Duration::from_secs(1) {
            (*start, *n) = (now, 0);
        }
        *n += 1;
        return *n <= max;
    }
    windows.insert(cgroup.to_owned(), (now, 1));
    max >= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn cfg(include: &[&str], runtime_only: bool) -> WatchConfig {
        WatchConfig {
            proc_root: "/proc".into(),
            setup: Setup::Hybrid,
            examiner: Examiner::new(
                std::path::Path::new("/proc"),
                std::path::Path::new("/"),
                Arc::new(super::super::Rules::default()),
                false,
            ),
            per_container_per_sec: 1,
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: vec!["/docker/skip".into()],
            runtime_only,
            containerd_namespaces: vec!["k8s.io".into()],
            cgroupns_root: None,
        }
    }

    #[test]
    fn only_followed_cgroups_are_looked_at() {
        let all = cfg(&[], false);
        assert!(!all.follows("/"));
        assert!(all.follows("/system.slice/cron.service"));
        assert!(!all.follows("/docker/skip"));
        let docker = cfg(&["/docker"], false);
        assert!(docker.follows("/docker/0123"));
        assert!(!docker.follows("/user.slice"));
        let id = "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let runtime = cfg(&[], true);
        assert!(runtime.follows(id));
        assert!(runtime.follows(&format!("{id}/nested")));
        assert!(!runtime.follows("/system.slice/cron.service"));
    }

    #[test]
    fn rate_is_per_container_and_per_second() {
        let mut w = HashMap::new();
        assert!((0..3).all(|_| within_rate(&mut w, "/a", 3)));
        assert!(!within_rate(&mut w, "/a", 3));
        assert!(within_rate(&mut w, "/b", 3));
        assert!(!within_rate(&mut w, "/c", 0));
    }
}
