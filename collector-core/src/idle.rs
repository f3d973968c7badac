//! Idle containers. Most containers on a host sit waiting most of the time, and most of their
//! files can only change when they do something: a read of them while a container is idle
//! would find the same figures again. So each sweep reads a few "probe" figures of every
//! container (CPU time, memory usage, number of tasks; network
//! counters are read as always, since the kernel answers and drops packets without the
//! container), and reads the rest only when the probe shows activity since the last full
//! read, when a full read is older than `Config::idle_interval`, or while something can still
//! move on its own.
//!
//! What can change with the probe standing still, and how it is covered:
//! - tasks waiting in the kernel use no CPU but add to IO and memory pressure: a full read
//!   whose netlink counts show a task running, uninterruptible or in IO wait is no baseline
//!   for idle reads, and a sleeping task gets into either state only by running (a woken task
//!   gets CPU within a scheduling period), which moves the CPU time. So an idle sweep does not
//!   ask for the counts, and reports those of the full read;
//! - dirty pages are written back by kernel threads, which adds to the container's disk
//!   counters and changes `dirty`/`writeback`: while the last full read saw either, it is
//!   active;
//! - the PSI averages decay with time: while any is above zero, it is active;
//! - a process moved in or out while asleep: `pids.current` changes (the netlink counts by
//!   state cannot tell: they miss tasks whose state has extra bits, as most sleeps have);
//! - a parent's figures include its children: only leaf cgroups are ever treated as idle;
//! - LRU ageing moves pages between the active and inactive lists without any activity of the
//!   container (the working set can drift): this is bounded by the idle interval.

use std::time::{Duration, Instant};

use crate::load::netlink::TaskCounts;
use crate::stats::{ContainerStats, DeviceIo, LoadSource, MemoryStats, PressureStats, Psi};

/// What a container's last full read saw, to tell later whether it has been idle since.
#[derive(Debug, Default)]
pub struct FullRead {
    at: Option<Instant>,
    probe: Probe,
    kept: Kept,
}

/// The figures read every sweep that any activity moves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Probe {
    usage_ns: Option<u64>,
    memory_bytes: Option<u64>,
    tasks: Option<u64>,
}

impl Probe {
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
    per_cpu_ns: Vec<u64>,
    throttling: [Option<u64>; 3],
    memory: MemoryStats,
    blkio: Vec<DeviceIo>,
    pressure: PressureStats,
    /// Task counts by state: none running or waiting, or the read is not kept.
    counts: TaskCounts,
    source: LoadSource,
}

impl FullRead {
    /// Whether `s`, holding this sweep's probe figures, shows no activity since this full read,
    /// which is younger than `interval`.
    ///
    /// No task state is asked for: at the full read none was running or waiting, and a task
    /// gets to either only by running (or by being woken, and a runnable task gets CPU time
    /// within a scheduling period), which moves the CPU time.
    pub fn still_idle(&self, s: &ContainerStats, now: Instant, interval: Duration) -> bool {
        let Some(at) = self.at else { return false };
        now.saturating_duration_since(at) < interval
            && Probe::of(s) == Some(self.probe)
            && self.settled()
    }

    /// Nothing left that moves without the container: no dirty or writeback pages, PSI
    /// averages all at zero.
    fn settled(&self) -> bool {
        let m = &self.kept.memory;
        let idle_psi = |p: &Option<Psi>| {
            p.as_ref().is_none_or(|p| {
                let zero =
                    |l: &crate::stats::PsiLine| l.avg10 == 0.0 && l.avg60 == 0.0 && l.avg300 == 0.0;
                zero(&p.some) && p.full.as_ref().is_none_or(zero)
            })
        };
        m.dirty_bytes.unwrap_or(0) == 0
            && m.writeback_bytes.unwrap_or(0) == 0
            && idle_psi(&self.kept.pressure.cpu)
            && idle_psi(&self.kept.pressure.memory)
            && idle_psi(&self.kept.pressure.io)
    }

    /// Remembers a full read of `s`, made at `now`. A container whose activity cannot be seen
    /// (CPU time, tasks or task states unknown) or that has tasks running or waiting is not
    /// a baseline for idle reads.
    pub fn record(&mut self, s: &ContainerStats, now: Instant) {
        let quiet = s.load.filter(|l| {
            l.running == 0
                && l.uninterruptible == 0
                && l.io_wait == 0
                && l.source != LoadSource::Truncated
        });
        let (Some(probe), Some(l)) = (Probe::of(s), quiet) else {
            self.at = None;
            return;
        };
        self.at = Some(now);
        self.probe = probe;
        let k = &mut self.kept;
        k.per_cpu_ns.clone_from(&s.cpu.per_cpu_ns);
        k.throttling = [s.cpu.nr_periods, s.cpu.nr_throttled, s.cpu.throttled_ns];
        k.memory.clone_from(&s.memory);
        k.blkio.clone_from(&s.blkio);
        k.pressure.clone_from(&s.pressure);
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
    }

    /// Fills in what an idle sweep did not read. `throttling`: whether CFS throttling is among
    /// those (v1's `cpu.stat`; v2's comes with the probe).
    pub fn restore(&self, s: &mut ContainerStats, throttling: bool) {
        let k = &self.kept;
        s.cpu.per_cpu_ns.clone_from(&k.per_cpu_ns);
        if throttling {
            [s.cpu.nr_periods, s.cpu.nr_throttled, s.cpu.throttled_ns] = k.throttling;
        }
        let usage = s.memory.usage_bytes;
        s.memory.clone_from(&k.memory);
        s.memory.usage_bytes = usage;
        s.memory.working_set_bytes = crate::v2::working_set(usage, s.memory.inactive_file_bytes);
        s.blkio.clone_from(&k.blkio);
        s.pressure.clone_from(&k.pressure);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{LoadStats, PsiLine};

    fn quiet(usage: u64, mem: u64) -> ContainerStats {
        let mut s = ContainerStats::default();
        s.cpu.usage_ns = Some(usage);
        s.memory.usage_bytes = Some(mem);
        s.pids.current = Some(1);
        s.load = Some(LoadStats::default());
        s
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
        f.record(&full, t0);
        assert_eq!(f.counts().0, TaskCounts::default());

        let later = t0 + Duration::from_secs(5);
        assert!(f.still_idle(&quiet(100, 4096), later, minute));
        assert!(!f.still_idle(&quiet(101, 4096), later, minute), "CPU used");
        assert!(
            !f.still_idle(&quiet(100, 8192), later, minute),
            "memory moved"
        );
        assert!(
            !f.still_idle(&quiet(100, 4096), t0 + minute, minute),
            "too old"
        );
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
            g.record(&busy, t0);
            assert!(!g.still_idle(&quiet(100, 4096), later, minute));
        }
        let mut no_load = quiet(100, 4096);
        no_load.load = None;
        let mut g = FullRead::default();
        g.record(&no_load, t0);
        assert!(
            !g.still_idle(&quiet(100, 4096), later, minute),
            "no task counts"
        );

        // What was not re-read comes back from the full read.
        let mut s = quiet(100, 4096);
        f.restore(&mut s, true);
        assert_eq!(s.memory.rss_bytes, Some(1000));
        assert_eq!(s.memory.usage_bytes, Some(4096));
        assert_eq!(s.memory.working_set_bytes, Some(4096));
        assert_eq!(s.blkio, full.blkio);
    }

    #[test]
    fn dirty_pages_and_pressure_keep_a_container_active() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let minute = Duration::from_secs(60);
        let mut dirty = quiet(1, 1);
        dirty.memory.dirty_bytes = Some(4096);
        let mut f = FullRead::default();
        f.record(&dirty, t0);
        assert!(!f.still_idle(&quiet(1, 1), later, minute));

        let mut stalled = quiet(1, 1);
        stalled.pressure.io = Some(Psi {
            some: PsiLine {
                avg300: 0.01,
                ..Default::default()
            },
            full: None,
        });
        f.record(&stalled, t0);
        assert!(!f.still_idle(&quiet(1, 1), later, minute));

        f.record(&quiet(1, 1), t0);
        assert!(f.still_idle(&quiet(1, 1), later, minute));
        f.forget();
        assert!(!f.still_idle(&quiet(1, 1), later, minute));
    }
}
