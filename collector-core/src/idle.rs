//! Idle containers. Most containers on a host sit waiting most of the time, and most of their
//! files can only change when they do something: a read of them while a container is idle
//! would find the same figures again. So each sweep reads a few "probe" figures of every
//! container (CPU time, memory usage, number of tasks; network
//! counters are read as always, since the kernel answers and drops packets without the
//! container), and reads the rest only when the probe shows activity since the last full
//! read, when a full read is older than `Config::idle_interval`, or while something can still
//! move on its own.
//!
//! A full read is a baseline only once the probe has stood still for 2 s (`SETTLE`): the
//! kernel brings memory.stat up to date at least that often, PSI its averages, and the CFS
//! period timer counts a period or two after the last run, so a read right after activity may
//! not show where things come to rest.
//!
//! What can change with the probe standing still, and how it is covered:
//! - tasks waiting in the kernel use no CPU but add to IO and memory pressure: a full read
//!   whose netlink counts show a task running, uninterruptible or in IO wait is no baseline
//!   for idle reads, and a sleeping task gets into either state only by running, which moves
//!   the CPU time. So an idle sweep does not ask for the counts, and reports those of the full
//!   read;
//! - dirty pages are written back by kernel threads, which adds to the container's disk
//!   counters and changes `dirty`/`writeback`: while the last full read saw either, it is
//!   active;
//! - the PSI averages decay with time: while any was above zero, idle sweeps read the three
//!   pressure files again;
//! - a process moved in or out while asleep: `pids.current` changes (the netlink counts by
//!   state cannot tell: they miss tasks whose state has extra bits, as most sleeps have);
//! - a parent's figures include its children: only leaf cgroups are ever treated as idle;
//! - memory usage falls by up to 64 pages per CPU when another cgroup's charge gives this
//!   one's per-CPU batch back: a fall that small is not activity (`memory_slack`), and idle
//!   sweeps report the usage read, with the working set from it.
//!
//! Left to the idle interval, which bounds how stale they can be (reviewed against the
//! kernel's sources): page-list ageing (active/inactive, so the working set) and swap-cache
//! freeing by reclaim; kernel memory freed by shrinkers while the per-CPU charge cache holds
//! the usage still; another cgroup dirtying or touching this one's page cache; a woken task
//! kept from running for a whole interval (a real-time hog with RT throttling off; a quota
//! used up with a period as long as the interval), whose running state and CPU pressure an
//! idle sweep misses.

use std::time::{Duration, Instant};

use crate::load::netlink::TaskCounts;
use crate::stats::{ContainerStats, LoadSource, PressureStats, Psi};

/// What a container's last full read saw, to tell later whether it has been idle since.
#[derive(Debug, Default)]
pub struct FullRead {
    /// When the baseline was read (`None`: no baseline, the next read is a full one).
    at: Option<Instant>,
    probe: Probe,
    kept: Kept,
    /// The probe as last seen, and since when it has stood still.
    still: Option<(Probe, Instant)>,
}

/// How long the probe must have stood still before a full read is a baseline: the kernel
/// brings memory.stat up to date at least this often (rstat flush), PSI its averages, and
/// the CFS period timer counts a period or two after the last run.
const SETTLE: Duration = Duration::from_secs(2);

/// The figures read every sweep that any activity moves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Probe {
    usage_ns: Option<u64>,
    memory_bytes: Option<u64>,
    tasks: Option<u64>,
}

/// How far memory usage falls with nothing done in the container: the kernel charges memory
/// in batches of 64 pages kept per CPU (`MEMCG_CHARGE_BATCH`), and a charge by another cgroup
/// on a CPU gives this one's unused batch there back, so on a busy host usage falls by up to
/// 64 pages per online CPU while every task of the container sleeps. A fall within it is the
/// counter's own fuzz, not activity. A rise is never fuzz (a charge, even one the kernel makes
/// on the container's behalf), nor a larger fall (reclaim).
fn memory_slack() -> u64 {
    static SLACK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SLACK.get_or_init(|| {
        use nix::unistd::{sysconf, SysconfVar};
        let page = match sysconf(SysconfVar::PAGE_SIZE) {
            Ok(Some(v)) if v > 0 => v as u64,
            _ => 4096,
        };
        let cpus = match sysconf(SysconfVar::_NPROCESSORS_ONLN) {
            Ok(Some(v)) if v > 0 => v as u64,
            _ => 1,
        };
        64 * page * cpus
    })
}

impl Probe {
    /// No activity since `earlier`: CPU time and tasks equal, memory usage the same or lower
    /// by no more than `memory_slack`.
    fn same(self, earlier: Probe) -> bool {
        let memory = match (self.memory_bytes, earlier.memory_bytes) {
            (Some(now), Some(then)) => now <= then && then - now <= memory_slack(),
            (now, then) => now == then,
        };
        self.usage_ns == earlier.usage_ns && self.tasks == earlier.tasks && memory
    }

    /// `None` when CPU time or the number of tasks is unknown: activity could not be seen.
    fn of(s: &ContainerStats) -> Option<Probe> {
        (s.cpu.usage_ns.is_some() && s.pids.current.is_some()).then_some(Probe {
            usage_ns: s.cpu.usage_ns,
            memory_bytes: s.memory.usage_bytes,
            tasks: s.pids.current,
        })
    }
}

/// The figures not re-read while idle, as last read.
#[derive(Debug, Default)]
struct Kept {
    /// The full read's rest (`ContainerStats::carry_rest`); its other figures stay default.
    stats: ContainerStats,
    /// Task counts by state: none running or waiting, or the read is not kept.
    counts: TaskCounts,
    source: LoadSource,
}

impl FullRead {
    /// Notes this sweep's probe figures (in `s`), before `still_idle`.
    pub fn observe(&mut self, s: &ContainerStats, now: Instant) {
        match (Probe::of(s), self.still) {
            (Some(p), Some((q, _))) if p.same(q) => {}
            (Some(p), _) => self.still = Some((p, now)),
            (None, _) => self.still = None,
        }
    }

    /// Whether `s`, holding this sweep's probe figures, shows no activity since this full read,
    /// which is younger than `interval`.
    ///
    /// No task state is asked for: at the full read none was running or waiting, and a task
    /// gets to either only by running (or by being woken, and a runnable task gets CPU time
    /// within a scheduling period), which moves the CPU time.
    pub fn still_idle(&self, s: &ContainerStats, now: Instant, interval: Duration) -> bool {
        let Some(at) = self.at else { return false };
        now.saturating_duration_since(at) < interval
            && Probe::of(s).is_some_and(|p| p.same(self.probe))
            && self.settled()
    }

    /// Whether `s`'s probe is the baseline's: nothing the probe shows has happened since the
    /// last baseline (false without one).
    pub fn unmoved(&self, s: &ContainerStats) -> bool {
        self.at.is_some() && Probe::of(s).is_some_and(|p| p.same(self.probe))
    }

    /// No dirty or writeback pages, whose writeback by kernel threads would move the disk
    /// counters and the memory breakdown.
    fn settled(&self) -> bool {
        let m = &self.kept.stats.memory;
        m.dirty_bytes.unwrap_or(0) == 0 && m.writeback_bytes.unwrap_or(0) == 0
    }

    /// Whether the PSI averages of the full read were above zero: they decay with time, so
    /// an idle sweep reads the pressure files again (`update_pressure`).
    pub fn pressure_moving(&self) -> bool {
        let p = &self.kept.stats.pressure;
        let moving = |p: &Option<Psi>| {
            p.as_ref().is_some_and(|p| {
                let zero =
                    |l: &crate::stats::PsiLine| l.avg10 == 0.0 && l.avg60 == 0.0 && l.avg300 == 0.0;
                !(zero(&p.some) && p.full.as_ref().is_none_or(zero))
            })
        };
        moving(&p.cpu) || moving(&p.memory) || moving(&p.io)
    }

    /// Keeps pressure figures read again on an idle sweep.
    pub fn update_pressure(&mut self, p: &PressureStats) {
        self.kept.stats.pressure.clone_from(p);
    }

    /// Remembers a full read of `s`, made at `now`, as the baseline for idle reads when it
    /// can be one: the probe known and standing still for `SETTLE` (observed), the task states
    /// known in full and none running or waiting.
    /// `throttling_in_probe` as for `ContainerStats::carry_rest`.
    pub fn record(&mut self, s: &ContainerStats, now: Instant, throttling_in_probe: bool) {
        let quiet = s.load.filter(|l| {
            l.running == 0
                && l.uninterruptible == 0
                && l.io_wait == 0
                && l.source != LoadSource::Truncated
        });
        let settled_for = |p: Probe| {
            self.still.is_some_and(|(q, since)| {
                p.same(q) && now.saturating_duration_since(since) >= SETTLE
            })
        };
        let (Some(probe), Some(l)) = (Probe::of(s).filter(|&p| settled_for(p)), quiet) else {
            self.at = None;
            return;
        };
        self.at = Some(now);
        self.probe = probe;
        let k = &mut self.kept;
        k.stats.carry_rest(s, throttling_in_probe);
        k.counts = TaskCounts {
            sleeping: l.sleeping,
            stopped: l.stopped,
            ..TaskCounts::default()
        };
        k.source = l.source;
    }

    /// The task counts of an idle container: those of the full read.
    pub fn counts(&self) -> (TaskCounts, LoadSource) {
        (self.kept.counts, self.kept.source)
    }

    /// Forgets the last full read: the next read is a full one.
    pub fn forget(&mut self) {
        self.at = None;
        self.still = None;
    }

    /// Fills in what an idle sweep did not read: the full read's rest, whole.
    pub fn restore(&self, s: &mut ContainerStats, throttling_in_probe: bool) {
        s.carry_rest(&self.kept.stats, throttling_in_probe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{DeviceIo, LoadStats, PsiLine};

    fn quiet(usage: u64, mem: u64) -> ContainerStats {
        let mut s = ContainerStats::default();
        s.cpu.usage_ns = Some(usage);
        s.memory.usage_bytes = Some(mem);
        s.pids.current = Some(1);
        s.load = Some(LoadStats::default());
        s
    }

    /// A full read of `s` at `t`, its probe having stood still since well before.
    fn baseline(f: &mut FullRead, s: &ContainerStats, t: Instant) {
        f.observe(s, t - Duration::from_secs(3));
        f.record(s, t, false);
    }

    #[test]
    fn idle_only_while_the_probe_stands_still() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let mut full = quiet(100, 4096);
        full.memory.rss_bytes = Some(1000);
        full.blkio.push(DeviceIo {
            major: 8,
            device: Some("sda".into()),
            read_bytes: 5,
            ..Default::default()
        });
        let mut f = FullRead::default();
        assert!(!f.still_idle(&quiet(100, 4096), t0, minute), "never read");
        // Not a baseline until the probe has stood still for SETTLE.
        f.observe(&full, t0 - Duration::from_secs(1));
        f.record(&full, t0, false);
        assert!(
            !f.still_idle(&quiet(100, 4096), t0, minute),
            "too fresh a stillness"
        );
        let t0 = t0 + Duration::from_secs(1);
        f.observe(&full, t0);
        f.record(&full, t0, false);
        assert_eq!(f.counts().0, TaskCounts::default());

        let later = t0 + Duration::from_secs(5);
        assert!(f.still_idle(&quiet(100, 4096), later, minute));
        assert!(!f.still_idle(&quiet(101, 4096), later, minute), "CPU used");
        assert!(
            !f.still_idle(&quiet(100, 8192), later, minute),
            "memory charged"
        );
        assert!(
            !f.still_idle(&quiet(100, 4096), t0 + minute, minute),
            "too old"
        );
        assert!(f.unmoved(&quiet(100, 4096)) && !f.unmoved(&quiet(101, 4096)));
        let mut moved_in = quiet(100, 4096);
        moved_in.pids.current = Some(2);
        assert!(!f.still_idle(&moved_in, later, minute), "a task joined");
        let mut no_pids = quiet(100, 4096);
        no_pids.pids.current = None;
        assert!(!f.still_idle(&no_pids, later, minute), "no task count");

        // A full read that saw tasks running or waiting, or did not see them all, is no
        // baseline.
        for set in [
            |l: &mut LoadStats| l.running = 1,
            |l: &mut LoadStats| l.uninterruptible = 1,
            |l: &mut LoadStats| l.io_wait = 1,
            |l: &mut LoadStats| l.source = LoadSource::Truncated,
        ] {
            let mut busy = quiet(100, 4096);
            busy.load.as_mut().map(set);
            let mut g = FullRead::default();
            baseline(&mut g, &busy, t0);
            assert!(!g.still_idle(&quiet(100, 4096), later, minute));
        }
        let mut no_load = quiet(100, 4096);
        no_load.load = None;
        let mut g = FullRead::default();
        baseline(&mut g, &no_load, t0);
        assert!(
            !g.still_idle(&quiet(100, 4096), later, minute),
            "no task counts"
        );

        // What was not re-read comes back from the full read.
        let mut s = quiet(100, 4096);
        f.restore(&mut s, false);
        assert_eq!(s.memory.rss_bytes, Some(1000));
        assert_eq!(s.memory.usage_bytes, Some(4096));
        assert_eq!(s.memory.working_set_bytes, Some(4096));
        assert_eq!(s.blkio, full.blkio);
    }

    #[test]
    fn dirty_pages_keep_a_container_active_and_pressure_is_read_again() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let minute = Duration::from_secs(60);
        let mut dirty = quiet(1, 1);
        dirty.memory.dirty_bytes = Some(4096);
        let mut f = FullRead::default();
        baseline(&mut f, &dirty, t0);
        assert!(!f.still_idle(&quiet(1, 1), later, minute));
        let mut writeback = quiet(1, 1);
        writeback.memory.writeback_bytes = Some(4096);
        baseline(&mut f, &writeback, t0);
        assert!(!f.still_idle(&quiet(1, 1), later, minute));

        // Decaying PSI averages do not stop idle reads: they ask for the pressure files.
        let mut stalled = quiet(1, 1);
        let psi = Psi {
            some: PsiLine {
                avg300: 0.01,
                total_us: 7,
                ..Default::default()
            },
            full: None,
        };
        stalled.pressure.io = Some(psi);
        baseline(&mut f, &stalled, t0);
        assert!(f.still_idle(&quiet(1, 1), later, minute));
        assert!(f.pressure_moving());
        let decayed = PressureStats {
            io: Some(Psi {
                some: PsiLine {
                    total_us: 7,
                    ..Default::default()
                },
                full: None,
            }),
            ..Default::default()
        };
        f.update_pressure(&decayed);
        assert!(!f.pressure_moving());
        let mut s = quiet(1, 1);
        f.restore(&mut s, false);
        assert_eq!(s.pressure, decayed);

        baseline(&mut f, &quiet(1, 1), t0);
        assert!(f.still_idle(&quiet(1, 1), later, minute));
        f.forget();
        assert!(!f.still_idle(&quiet(1, 1), later, minute));
    }

    #[test]
    fn a_probe_that_moved_restarts_the_settling() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let mut f = FullRead::default();
        f.observe(&quiet(1, 1), t0);
        // Moved one second later: still for 1 s at the next full read, not a baseline.
        let t1 = t0 + Duration::from_secs(1);
        f.observe(&quiet(2, 1), t1);
        f.record(&quiet(2, 1), t0 + Duration::from_secs(2), false);
        assert!(!f.still_idle(&quiet(2, 1), t0 + Duration::from_secs(3), minute));
        let t3 = t0 + Duration::from_secs(3);
        f.observe(&quiet(2, 1), t3);
        f.record(&quiet(2, 1), t3, false);
        assert!(f.still_idle(&quiet(2, 1), t0 + Duration::from_secs(4), minute));
    }
}

#[cfg(test)]
mod slack {
    use super::*;

    /// Usage falling by the per-CPU batches given back is no activity; a rise, or a larger
    /// fall (reclaim), is.
    #[test]
    fn only_a_small_fall_of_memory_is_fuzz() {
        let base = 1u64 << 32;
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let minute = Duration::from_secs(60);
        let mut s = ContainerStats::default();
        s.cpu.usage_ns = Some(100);
        s.pids.current = Some(1);
        s.load = Some(crate::stats::LoadStats::default());
        let at = |mem: u64| {
            let mut x = s.clone();
            x.memory.usage_bytes = Some(mem);
            x
        };
        let mut f = FullRead::default();
        f.observe(&at(base), t0 - Duration::from_secs(3));
        f.record(&at(base), t0, false);
        assert!(f.still_idle(&at(base - memory_slack()), later, minute));
        assert!(!f.still_idle(&at(base - memory_slack() - 1), later, minute));
        assert!(!f.still_idle(&at(base + 4096), later, minute));
        assert!(memory_slack() >= 64 * 4096);
        // A full read made after a small fall is a baseline all the same.
        let mut g = FullRead::default();
        g.observe(&at(base), t0 - Duration::from_secs(3));
        g.record(&at(base - 4096), t0, false);
        assert!(g.still_idle(&at(base - 4096), later, minute));
    }
}
