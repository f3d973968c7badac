//! Reading one followed cgroup in a sweep, in the order the phases must run:
//!
//! 1. `prepare`: spec watches before the spec is read, descriptors held as the plan allows;
//! 2. `spec_due`: whether the limits are read this time (a watched write, or the timer);
//! 3. `read_probe`: what any activity moves (CPU time, memory usage, tasks);
//! 4. `activity`: whether the container is idle since its last full read (`idle.rs`);
//! 5. `read_load`: task counts and their averages (the full read's when idle);
//! 6. `read_rest` or, when idle, `carry_rest`: everything else the full read takes;
//! 7. `read_spec`: the limits, or the last ones;
//! 8. `read_process`: a process of it, for its network counters, socket states (full reads)
//!    and writable layer;
//! 9. `remember`: a full read without errors is the baseline for idle sweeps;
//! 10. `finish`: gone or made again, held files handed back, errors taken.

use std::time::Instant;

use super::peers::{Judge, NodeAddrs, PeerPolicy};
use super::tracked::Tracked;
use super::Config;
use crate::devices::DeviceNames;
use crate::dirs::DirPlan;
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::hierarchy::{Controller, Setup};
use crate::identity::Kind;
use crate::load::{self, LoadReader};
use crate::network::{self, NetReader, NsId};
use crate::processes::ProcessReader;
use crate::read::{CgDir, Dir, Reader};
use crate::security::inspect::Examiner;
use crate::security::sockets::SocketRow;
use crate::specwatch::{SpecWatch, Written};
use crate::stats::Spec;
use crate::{v1, v2};

/// What reading a container needs of the collector, borrowed apart from the list of
/// containers for the length of one sweep.
pub(super) struct Sweep<'a> {
    pub config: &'a Config,
    pub setup: Setup,
    pub user_hz: u64,
    pub reader: &'a mut Reader,
    pub net: &'a mut NetReader,
    pub load: Option<&'a mut LoadReader>,
    pub processes: Option<&'a mut ProcessReader>,
    pub devices: &'a mut DeviceNames,
    pub layers: Option<&'a mut crate::fs::Layers>,
    pub spec_watch: Option<&'a mut SpecWatch>,
    /// Containers whose spec directories were written since the last sweep.
    pub spec_written: Written,
    pub plan: DirPlan,
    pub now: Instant,
    pub now_ms: u64,
    /// Judges new processes, when the security signals are on.
    pub examiner: Option<&'a Examiner>,
    /// Reused for the socket tables' rows.
    pub tcp_rows: &'a mut Vec<SocketRow>,
    /// The namespace whose rows `tcp_rows` holds, read in this sweep: a pod's containers
    /// share them.
    pub rows_ns: Option<NsId>,
    /// Every namespace's addresses, for the peers (security signals on).
    pub addrs: Option<&'a mut NodeAddrs>,
    /// Findings counted in this sweep but not made events (`events_per_sweep`).
    pub unreported: u64,
}

impl Sweep<'_> {
    /// Reads one followed cgroup into its stats. False when it has vanished.
    pub fn read(&mut self, t: &mut Tracked, errors: &mut Vec<Error>) -> bool {
        self.prepare(t);
        let spec_due = self.spec_due(t);
        let want = self.read_probe(t, spec_due);
        let (idle, unmoved) = self.activity(t);
        self.read_load(t, idle);
        if idle {
            self.carry_rest(t);
            // Sockets met by the last walk wait for a second one to be judged, idle or not.
            if t.signals.sockets_pending() {
                self.read_process_group(t);
            }
        } else {
            self.read_rest(t, want);
        }
        self.read_spec(t, spec_due);
        self.read_process(t, idle, unmoved);
        if !idle {
            self.remember(t);
        }
        self.finish(t, idle, errors)
    }

    /// The probe alone, as an idle sweep reads it (for tests of what it carries over).
    #[cfg(test)]
    pub fn probe(&mut self, t: &mut Tracked) {
        self.prepare(t);
        let spec_due = self.spec_due(t);
        self.read_probe(t, spec_due);
        self.reader.set_hold_files(false);
        self.reader.swap_files(&mut t.files, false);
        self.reader.discard();
    }

    /// CFS throttling comes with the probe's `cpu.stat` on cgroup v2; on v1 from the cpu
    /// controller's, which only full reads take.
    fn throttling_in_probe(&self) -> bool {
        self.setup == Setup::Unified
    }

    fn prepare(&mut self, t: &mut Tracked) {
        // Watched before its spec is read, so no write after the read goes unseen.
        if t.spec.watches.is_none() {
            if let Some(w) = self.spec_watch.as_deref_mut() {
                t.spec.watches = w.watch(t.dirs.spec_dirs(self.setup));
            }
        }
        if let Some(budget) = self.reader.budget() {
            if self.config.hold_files && !t.files.is_empty() {
                t.dirs.hold_netlink_dir_only(budget);
            } else {
                t.dirs.hold(&mut self.plan, budget);
            }
        }
        self.reader.swap_files(&mut t.files, false);
        t.stats.reset();
    }

    fn spec_due(&mut self, t: &mut Tracked) -> bool {
        let written = t
            .spec
            .watches
            .as_ref()
            .is_some_and(|w| self.spec_written.any_of(w));
        let every = if t.spec.watches.is_some() {
            self.config.watched_spec_interval
        } else {
            self.config.spec_interval
        };
        let due = written
            || t.spec
                .read_at
                .is_none_or(|at| self.now.duration_since(at) >= every);
        if written {
            // A write can change what no probe shows (a v1 max usage reset, force_empty): a
            // full read, and a new baseline after it.
            t.activity.full.forget();
        }
        // Spec files are read rarely: never held.
        self.reader.set_hold_files(self.config.hold_files && !due);
        if due {
            t.stats.spec = Spec::default();
        }
        due
    }

    /// CPU time, memory usage and task counts. On hybrid hosts the twin's `cpu.stat` first:
    /// it has the usage and exact user/system time, which makes v1's `cpuacct.usage` and
    /// tick-rounded `cpuacct.stat` unnecessary.
    fn read_probe(&mut self, t: &mut Tracked, spec_due: bool) -> v1::Want {
        let r = &mut *self.reader;
        let s = &mut t.stats;
        let mut want = v1::Want {
            per_cpu: self.config.per_cpu,
            cpu_usage: true,
            cpu_times: true,
        };
        if self.setup == Setup::Unified {
            if let Some(dir) = t.dirs.unified() {
                v2::read_probe(r, dir.into(), s);
            }
            return want;
        }
        if let Some(dir) = t.dirs.unified() {
            v2::read_cpu(r, dir.into(), &mut s.cpu);
            // Checked with the spec: the twin holds the tasks when it agrees with v1.
            if let (true, Some(twin), Some(acct)) =
                (spec_due, s.cpu.usage_ns, t.dirs.v1(Controller::Cpuacct))
            {
                let ok = r
                    .u64(acct, "cpuacct.usage")
                    .is_none_or(|v1| twin_agrees(twin, v1));
                t.dirs.twin_ok = ok;
            }
            if !t.dirs.twin_ok {
                (s.cpu.usage_ns, s.cpu.user_ns, s.cpu.system_ns) = (None, None, None);
            }
        }
        want.cpu_usage = s.cpu.usage_ns.is_none();
        want.cpu_times = s.cpu.user_ns.is_none();
        v1::read_probe(r, &t.dirs, self.user_hz, want, s);
        want
    }

    /// Whether nothing has moved since the last full read, whose other figures then stand;
    /// and whether nothing has since the last baseline (a full read that follows is then the
    /// idle interval's refresh).
    fn activity(&mut self, t: &mut Tracked) -> (bool, bool) {
        let a = &mut t.activity;
        a.full.observe(&t.stats, self.now);
        let unmoved = a.full.unmoved(&t.stats);
        a.idle = a.leaf
            && !self.reader.stale_dir()
            && a.full
                .still_idle(&t.stats, self.now, self.config.idle_interval);
        (a.idle, unmoved)
    }

    fn read_load(&mut self, t: &mut Tracked, idle: bool) {
        let counts = match (self.load.as_deref_mut(), t.dirs.procs_dir(self.setup)) {
            _ if idle => Some(t.activity.full.counts()),
            (Some(load), Some(tasks_dir)) => {
                // A directory descriptor found stale by the probe would have the kernel count
                // the tasks of the removed cgroup: go by path then.
                let stale = self.reader.stale_dir();
                load.counts(
                    self.reader,
                    t.dirs.netlink_dir().map(|d| dir_of(d, stale)),
                    dir_of(tasks_dir, stale),
                    self.setup == Setup::Unified,
                )
            }
            _ => None,
        };
        if let Some((counts, source)) = counts {
            let now = self.now;
            let prev = t
                .activity
                .last_load
                .map(|(l, at)| (l, now.duration_since(at).as_secs_f64()));
            let l = load::update_average(prev, counts, source);
            t.activity.last_load = Some((l, now));
            t.stats.load = Some(l);
        }
    }

    /// An idle sweep: the last full read's rest, and the pressure files again while their
    /// averages decay.
    fn carry_rest(&mut self, t: &mut Tracked) {
        let full = &mut t.activity.full;
        full.restore(&mut t.stats, self.throttling_in_probe());
        if full.pressure_moving() {
            // The unified directory, or the hybrid twin.
            if let Some(dir) = t.dirs.unified() {
                v2::read_pressure(self.reader, dir.into(), &mut t.stats.pressure);
                full.update_pressure(&t.stats.pressure);
            }
        }
    }

    /// A full read: every file but the probe's and the spec's; a new baseline for idle
    /// sweeps when nothing went wrong.
    fn read_rest(&mut self, t: &mut Tracked, want: v1::Want) {
        let r = &mut *self.reader;
        let s = &mut t.stats;
        if self.setup == Setup::Unified {
            if let Some(dir) = t.dirs.unified() {
                v2::read_rest(r, dir.into(), s);
            }
        } else {
            v1::read_rest(r, &t.dirs, want, s);
            if let Some(dir) = t.dirs.unified() {
                v2::read_pressure(r, dir.into(), &mut s.pressure);
            }
        }
        for d in s.blkio.iter_mut() {
            if d.device.is_none() {
                d.device = self.devices.name(d.major, d.minor).map(str::to_string);
            }
        }
        self.read_process_group(t);
    }

    /// A full read is the baseline for idle sweeps, unless it met errors or a stale directory.
    fn remember(&mut self, t: &mut Tracked) {
        let r = &*self.reader;
        if !r.has_errors() && !r.stale_dir() {
            let in_probe = self.throttling_in_probe();
            t.activity.full.record(&t.stats, self.now, in_probe);
        } else {
            t.activity.full.forget();
        }
    }

    /// The process group, on the process interval; the last one between.
    fn read_process_group(&mut self, t: &mut Tracked) {
        let Some(reader) = self.processes.as_deref_mut() else {
            return;
        };
        if t.identity.kind == Kind::Root {
            return;
        }
        let g = &mut t.process_group;
        let every = self.config.process_interval;
        if g.read_at
            .is_none_or(|at| self.now.duration_since(at) >= every)
        {
            if let Some(dir) = t.dirs.procs_dir(self.setup) {
                reader.read(self.reader, dir.into(), &mut g.last);
                g.read_at = Some(self.now);
                if let Some(ex) = self.examiner {
                    t.signals.poll(reader.pids(), ex, self.now_ms);
                    g.tables_due = t.signals.tables_due(reader.inodes());
                    g.inodes.clear();
                    g.inodes.extend_from_slice(reader.inodes());
                }
            }
        }
        t.stats.processes.clone_from(&g.last);
    }

    fn read_spec(&mut self, t: &mut Tracked, spec_due: bool) {
        let s = &mut t.stats;
        if spec_due {
            if self.setup == Setup::Unified {
                if let Some(dir) = t.dirs.unified() {
                    v2::read_spec(self.reader, dir.into(), s);
                }
            } else {
                v1::read_spec(self.reader, &t.dirs, s);
            }
            t.spec.last.assign(&s.spec);
            t.spec.read_at = Some(self.now);
        } else {
            s.spec.assign(&t.spec.last);
        }
        s.pids.limit = s.spec.pids_limit;
    }

    /// A process of the container, for its network namespace and its writable layer. Its
    /// handle is kept while the process lives, and renewed on the first read after each spec
    /// interval that shows activity, in case it moved to another cgroup or namespace: a move
    /// changes the task count, a change of namespace takes CPU time.
    fn read_process(&mut self, t: &mut Tracked, idle: bool, unmoved: bool) {
        let kind = t.identity.kind;
        let wants_net = self.config.network && kind != Kind::Root;
        let wants_pid = wants_net || (self.layers.is_some() && kind == Kind::Container);
        let p = &mut t.proc;
        if p.checked
            .is_none_or(|at| self.now.duration_since(at) >= self.config.spec_interval)
        {
            p.renew = true;
            p.checked = Some(self.now);
        }
        if !wants_pid || (p.renew && !unmoved) {
            p.handle = None;
            p.renew = false;
        }
        let procs_dir = t.dirs.procs_dir(self.setup);
        let renew = |net: &mut NetReader, r: &mut Reader| {
            procs_dir
                .and_then(|d| network::first_pid(r, d.into()))
                .map(|pid| net.handle(pid))
        };
        if wants_pid && p.handle.is_none() {
            p.handle = renew(self.net, self.reader);
        }
        let s = &mut t.stats;
        if !wants_net {
            s.network.interfaces.clear();
        }
        if wants_net
            && !self
                .net
                .read(p.handle.as_mut(), self.reader, &mut s.network, idle)
        {
            // That process has exited: take another one, once.
            p.handle = renew(self.net, self.reader);
            self.net
                .read(p.handle.as_mut(), self.reader, &mut s.network, false);
        }
        if wants_net && !idle && self.config.socket_states {
            // Each table read walks the kernel's whole socket hash (every namespace's):
            // on the process interval, the last ones between.
            let g = &mut t.process_group;
            let every = self.config.process_interval;
            if g.sockets_at
                .is_none_or(|at| self.now.duration_since(at) >= every)
            {
                self.net
                    .read_sockets(p.handle.as_ref(), self.reader, &mut g.sockets);
                g.sockets_at = Some(self.now);
            }
            s.sockets.clone_from(&g.sockets);
        }
        if let (Some(addrs), Some(h)) = (self.addrs.as_deref_mut(), p.handle.as_ref()) {
            if let (Some(ns), false) = (h.ns(), h.in_host()) {
                let r = &mut *self.reader;
                let every = self.config.process_interval;
                let (name, image) = (t.meta.name.as_deref(), t.meta.image.as_deref());
                addrs.visit(ns, &t.id, name, image, self.now, every, |out| {
                    network::local_addrs(h, r, out)
                });
            }
        }
        // Peers are read with each walk of its descriptors that found other sockets than the
        // last read: the same sockets have the same peers.
        let g = &mut t.process_group;
        let walked = g.read_at == Some(self.now);
        let peers_due = self.addrs.is_some() && walked && t.peers.due(&g.inodes);
        let tables_due = std::mem::take(&mut g.tables_due);
        let h = p.handle.as_ref();
        if peers_due && g.inodes.is_empty() {
            t.peers.read(&[], &[], h.and_then(|h| h.ns()));
        } else if let (true, Some(h)) = (tables_due || peers_due, h) {
            if self.rows_ns.is_none() || self.rows_ns != h.ns() {
                network::tcp_rows(h, self.reader, self.tcp_rows);
                self.rows_ns = h.ns();
            }
            if tables_due {
                let sec = &self.config.security;
                let policy = t
                    .meta
                    .image
                    .as_deref()
                    .and_then(|i| sec.policy.for_image(i));
                let age_ms = self.now_ms.saturating_sub(t.first_seen_ms);
                let learning = u128::from(age_ms) < sec.listener_learning.as_millis();
                t.signals.judge_tables(
                    self.tcp_rows,
                    &g.inodes,
                    &sec.rules,
                    policy,
                    learning,
                    self.now_ms,
                );
            }
            if peers_due {
                t.peers.read(self.tcp_rows, &g.inodes, h.ns());
            }
        }
        if let Some(layers) = self.layers.as_deref_mut() {
            // The network read may have skipped the process (a shared or the host's
            // namespace): make sure it is still there before its mounts are looked at.
            // (An idle container's task count has not moved: its process is still there.)
            if kind == Kind::Container && !idle && p.handle.as_ref().is_some_and(|h| !h.alive()) {
                p.handle = renew(self.net, self.reader);
            }
            let pid = p.handle.as_ref().map(|h| h.pid);
            s.fs = layers.read(&t.id, kind, pid, self.devices, self.now_ms);
        }
        p.short = p.handle.as_ref().is_some_and(|h| !h.is_held());
        if p.short {
            // No descriptor to pin the process: its pid may belong to another by the next
            // sweep, so the handle ends with this one.
            p.handle = None;
        }
    }

    /// Resolves its peers once every namespace of the sweep is known (`addrs_changed`: the
    /// node's addresses changed since the last sweep) and reports the new ones.
    pub fn resolve_peers(&mut self, t: &mut Tracked, addrs_changed: bool) {
        let Some(addrs) = self.addrs.as_deref() else {
            return;
        };
        if t.identity.kind == Kind::Root {
            return;
        }
        let sec = &self.config.security;
        let age_ms = self.now_ms.saturating_sub(t.first_seen_ms);
        // As for processes: only a runtime's containers have an image to wait for.
        let policy = match t.meta.image.as_deref() {
            _ if sec.policy.is_empty() => PeerPolicy::None,
            Some(i) => sec
                .policy
                .for_image(i)
                .filter(|p| p.limits_peers())
                .map_or(PeerPolicy::None, PeerPolicy::Rules),
            None if t.identity.kind == Kind::Container => PeerPolicy::Wait,
            None => PeerPolicy::None,
        };
        let judge = Judge {
            addrs,
            cluster: &sec.cluster_cidrs,
            learning: u128::from(age_ms) < sec.peer_learning.as_millis(),
            policy,
            now_ms: self.now_ms,
        };
        let signals = &mut t.signals;
        t.peers.resolve(
            &judge,
            addrs_changed,
            |f| signals.report_found(f),
            &mut t.stats.peers,
        );
    }

    /// Judges its processes against its image's policy once the image is known, makes its
    /// new findings events (up to `events_per_sweep`) and reports its counters.
    pub fn findings_to_events(&mut self, t: &mut Tracked, events: &mut Vec<Event>) {
        if t.identity.kind == Kind::Root {
            return;
        }
        let sec = &self.config.security;
        let image = t.meta.image.as_deref();
        // Only a runtime's containers have an image to wait for, and only with a policy.
        let known = sec.policy.is_empty() || image.is_some() || t.identity.kind != Kind::Container;
        t.signals
            .judge_policy(known, || image.and_then(|i| sec.policy.for_image(i)));
        self.unreported += t.signals.take_unreported();
        let fresh: Vec<_> = t.signals.take_fresh().collect();
        for (n, f) in fresh.into_iter().enumerate() {
            tracing::warn!(
                id = %t.id,
                name = ?t.meta.name,
                image = ?t.meta.image,
                pid = ?f.process.as_ref().map(|p| p.pid),
                exe = ?f.process.as_ref().map(|p| p.exe.as_str()),
                remote = ?f.remote,
                local = ?f.local,
                peer = ?f.peer.as_ref().and_then(|p| p.container_id.as_deref()),
                "security finding: {}",
                f.kind
            );
            if n >= sec.events_per_sweep {
                self.unreported += 1;
                continue;
            }
            let mut e = t.event(EventKind::Finding(f.kind), f.time_ms, 1);
            e.finding = Some(Box::new(f));
            events.push(e);
        }
        t.stats.security = t.signals.stats();
    }

    /// Whether it is still there; lets go of what a directory made again invalidates, hands
    /// the held files back and takes the errors.
    fn finish(&mut self, t: &mut Tracked, idle: bool, errors: &mut Vec<Error>) -> bool {
        let r = &mut *self.reader;
        let gone = r.saw_missing()
            && t.dirs
                .procs_dir(self.setup)
                .is_some_and(|d| !d.path.exists());
        if r.stale_dir() {
            // Removed and made again under the same name: reopen at the next read, and take
            // its spec and a process of it afresh (the watches were on the removed ones).
            t.dirs.release_all();
            r.drop_files();
            t.forget_reads(self.spec_watch.as_deref_mut());
        }
        r.set_hold_files(false);
        // Files an idle sweep did not read are still wanted by the next full one.
        r.swap_files(&mut t.files, !idle);
        if gone {
            r.discard();
            return false;
        }
        r.take_errors(errors);
        true
    }
}

/// A directory to read from: by its descriptor, or by path when the descriptor is stale.
fn dir_of(d: &CgDir, stale: bool) -> Dir<'_> {
    if stale {
        Dir::from(d.path.as_path())
    } else {
        Dir::from(d)
    }
}

/// Whether the hybrid twin's CPU time (read first, in whole microseconds) and v1's agree: the
/// twin then holds the container's tasks. Within 2% or 50 ms.
fn twin_agrees(twin_ns: u64, v1_ns: u64) -> bool {
    twin_ns.abs_diff(v1_ns) <= (v1_ns / 50).max(50_000_000)
}
