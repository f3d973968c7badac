//! The collector's part of the security signals: the exec watch it owns, the records it
//! hands to its containers at each sweep, and what it reports of them.

use super::tracked::parent_id;
use super::{Collector, Config};
use crate::hierarchy::Hierarchy;
use crate::identity::Kind;
use crate::security::exec_watch::{ExecRecord, ExecWatch, WatchConfig};
use crate::security::inspect::Examiner;
use crate::security::sockets::SocketRow;

/// Exec records kept for the next sweep, at most.
const HELD_MAX: usize = 4096;

/// Where new processes are learnt from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecSource {
    /// The security signals are off.
    Off,
    /// The kernel's process events: every exec, as it happens.
    ProcessEvents,
    /// The walks of `cgroup.procs` on the process interval: processes shorter than it, and
    /// an exec that keeps its pid, are missed.
    Polling,
}

impl ExecSource {
    /// The source's name for self-metrics (`off`, `process_events`, `polling`).
    pub fn name(self) -> &'static str {
        match self {
            ExecSource::Off => "off",
            ExecSource::ProcessEvents => "process_events",
            ExecSource::Polling => "polling",
        }
    }
}

/// Counters of the security signals' own work, for self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecurityCounters {
    /// Exec events received.
    pub execs: u64,
    /// Execs whose process was looked at.
    pub examined: u64,
    /// Execs not looked at: over their container's rate (`SecurityConfig::exec_rate`).
    pub rate_limited: u64,
    /// Execs whose process was gone before it could be looked at.
    pub gone: u64,
    /// Exec records dropped: the queue was full, or their cgroup was never followed.
    pub dropped: u64,
    /// Times the kernel's event queue overflowed (events lost).
    pub overruns: u64,
    /// Findings counted but not made events (`SecurityConfig::events_per_sweep`).
    pub unreported: u64,
}

/// The collector's part of the security signals.
#[derive(Debug, Default)]
pub(super) struct Security {
    pub examiner: Option<Examiner>,
    watch: Option<ExecWatch>,
    /// Records whose cgroup was not followed at the last sweep.
    held: Vec<ExecRecord>,
    pub rows: Vec<SocketRow>,
    /// Every namespace's addresses, for the peers (`None` while the signals are off).
    pub addrs: Option<super::peers::NodeAddrs>,
    unmatched: u64,
    pub unreported: u64,
}

impl Security {
    /// Whether the exec watch (a thread and a netlink socket) runs.
    pub fn watching(&self) -> bool {
        self.watch.is_some()
    }

    pub fn new(config: &Config, hierarchy: &Hierarchy) -> Security {
        let sec = &config.security;
        if !(sec.enabled && config.processes) {
            return Security::default();
        }
        let examiner = Examiner::new(
            &config.roots.proc_root,
            &config.fs.rootfs,
            std::sync::Arc::new(sec.rules.clone()),
            !sec.policy.is_empty(),
        );
        let watch = if sec.exec_events {
            ExecWatch::start(WatchConfig {
                proc_root: config.roots.proc_root.clone(),
                setup: hierarchy.setup,
                examiner: examiner.clone(),
                per_container_per_sec: sec.exec_rate,
                include: config.include.clone(),
                exclude: config.exclude.clone(),
                runtime_only: config.runtime_only,
                containerd_namespaces: config.containerd_namespaces.clone(),
                cgroupns_root: crate::security::cgroupns::namespace_root(&config.roots, hierarchy),
            })
            .map_err(|e| {
                tracing::warn!(
                    "process events unavailable ({e}): new processes are found by the walks \
                     on the process interval, which miss those shorter than it"
                )
            })
            .ok()
        } else {
            None
        };
        Security {
            examiner: Some(examiner),
            watch,
            // Peers ride on the process handle the network figures keep.
            addrs: config.network.then(super::peers::NodeAddrs::default),
            ..Security::default()
        }
    }
}

impl Collector {
    /// Where new processes are learnt from, for the security signals.
    pub fn exec_source(&self) -> ExecSource {
        match (&self.security.examiner, &self.security.watch) {
            (None, _) => ExecSource::Off,
            (Some(_), Some(_)) => ExecSource::ProcessEvents,
            (Some(_), None) => ExecSource::Polling,
        }
    }

    /// What the security signals have done since the collector started.
    pub fn security_counters(&self) -> SecurityCounters {
        let mut c = SecurityCounters {
            unreported: self.security.unreported,
            ..SecurityCounters::default()
        };
        if let Some(w) = &self.security.watch {
            let w = w.counters();
            let get =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            c.execs = get(&w.execs);
            c.examined = get(&w.examined);
            c.rate_limited = get(&w.rate_limited);
            c.gone = get(&w.gone);
            c.dropped = get(&w.dropped) + self.security.unmatched;
            c.overruns = get(&w.overruns);
        }
        c
    }

    /// Hands each exec the process events reported to the container it happened in. One in
    /// a cgroup not followed yet waits a sweep (the rescan may not have found it yet), then
    /// goes to the nearest followed one above it; the machine's own cgroup takes none.
    pub(super) fn apply_execs(&mut self) {
        let Some(w) = self.security.watch.as_ref() else {
            return;
        };
        let mut recs = std::mem::take(&mut self.security.held);
        let retried = recs.len();
        w.take(&mut recs);
        if recs.is_empty() {
            return;
        }
        let targets: Vec<Option<usize>> = {
            let index: std::collections::HashMap<&str, usize> = self
                .tracked
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.as_str(), i))
                .collect();
            recs.iter()
                .enumerate()
                .map(|(n, r)| {
                    index.get(r.cgroup.as_str()).copied().or_else(|| {
                        if n >= retried {
                            return None;
                        }
                        let mut id = r.cgroup.as_str();
                        loop {
                            id = parent_id(id).filter(|p| *p != "/")?;
                            if let Some(&i) = index.get(id) {
                                return Some(i);
                            }
                        }
                    })
                })
                .collect()
        };
        for (n, (rec, target)) in recs.into_iter().zip(targets).enumerate() {
            match target {
                Some(i) if self.tracked[i].identity.kind != Kind::Root => {
                    self.tracked[i].signals.note_exec(rec);
                }
                Some(_) => {}
                None if n >= retried && self.security.held.len() < HELD_MAX => {
                    self.security.held.push(rec);
                }
                None => self.security.unmatched += 1,
            }
        }
    }
}
