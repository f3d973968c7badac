//! A followed cgroup's directories: one per v1 controller it exists in, and its cgroup2 one
//! (the only one on unified hosts, the twin on hybrid ones). They are looked up by what they
//! are, never by position, and this is the one place that says what each is read for and so
//! how they share a short descriptor budget.

use std::path::{Path, PathBuf};

use crate::hierarchy::{Controller, Setup};
use crate::read::{CgDir, FdBudget};

/// Which hierarchy a directory lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    V1(Controller),
    Unified,
}

impl Slot {
    /// Every slot: the v1 controllers, then cgroup2.
    pub(crate) fn all() -> impl Iterator<Item = Slot> {
        Controller::ALL
            .into_iter()
            .map(Slot::V1)
            .chain([Slot::Unified])
    }
}

/// What a directory is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// On every sweep (the probe): memory, pids, cgroup2; cpuacct when no hybrid twin gives
    /// the CPU time.
    Probe,
    /// By full reads only: cpu, blkio; cpuacct when the twin gives the CPU time.
    Full,
    /// For the spec only: cpuset.
    Spec,
}

/// What the directory in `slot` is read for; `twin`: the hybrid twin gives the CPU time.
fn use_of(slot: Slot, twin: bool) -> Use {
    match slot {
        Slot::V1(Controller::Cpuset) => Use::Spec,
        Slot::V1(Controller::Cpuacct) if twin => Use::Full,
        Slot::V1(Controller::Cpu | Controller::Blkio) => Use::Full,
        _ => Use::Probe,
    }
}

/// v1 controllers in the order to pick one of them for a job any will do (listing the
/// processes, watching for new cgroups): memory first, as runtimes and systemd make it with
/// the others and every container has it.
pub(crate) const PREFERENCE: [Controller; 6] = [
    Controller::Memory,
    Controller::Cpu,
    Controller::Cpuacct,
    Controller::Pids,
    Controller::Blkio,
    Controller::Cpuset,
];

/// The directories of one cgroup.
#[derive(Debug)]
pub(crate) struct CgDirs {
    v1: [Option<CgDir>; 6],
    unified: Option<CgDir>,
    /// Whether the hybrid twin's `cpu.stat` agrees with v1's `cpuacct.usage` (checked with
    /// the spec): when it does not (its tasks are elsewhere), v1's files are read.
    pub twin_ok: bool,
}

/// How a sweep shares a short descriptor budget. Every sweep reads a container's probe, full
/// reads only the rest; so the probe's descriptors come first for every container: the full
/// read's take only what the probes leave free, and are let go when the probes lack more
/// than is free. Without it the first containers found held everything and the rest nothing,
/// and the cost per container grew with the count once the budget ran out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirPlan {
    /// Full-read descriptors that may still be taken this sweep.
    full_allowance: usize,
    /// Full-read descriptors still to let go this sweep.
    to_release: usize,
}

impl DirPlan {
    /// `probe_short`: probe descriptors wanted and not held; `free`: the budget's room.
    pub(crate) fn new(probe_short: usize, free: usize) -> DirPlan {
        DirPlan {
            full_allowance: free.saturating_sub(probe_short),
            to_release: probe_short.saturating_sub(free),
        }
    }
}

impl CgDirs {
    /// The directories `found` names for each slot.
    pub(crate) fn new(mut found: impl FnMut(Slot) -> Option<PathBuf>) -> CgDirs {
        CgDirs {
            v1: Controller::ALL.map(|c| found(Slot::V1(c)).map(CgDir::new)),
            unified: found(Slot::Unified).map(CgDir::new),
            twin_ok: true,
        }
    }

    /// Takes the directories a rescan found, keeping those (and their descriptors) whose
    /// path is the same. True when any changed.
    pub(crate) fn adopt(&mut self, mut found: impl FnMut(Slot) -> Option<PathBuf>) -> bool {
        let mut changed = false;
        for slot in Slot::all() {
            let d = self.slot_mut(slot);
            match (d.as_ref(), found(slot)) {
                (Some(d), Some(p)) if d.path == p => {}
                (None, None) => {}
                (_, p) => {
                    *d = p.map(CgDir::new);
                    changed = true;
                }
            }
        }
        changed
    }

    pub(crate) fn v1(&self, c: Controller) -> Option<&CgDir> {
        self.v1[c.index()].as_ref()
    }

    pub(crate) fn unified(&self) -> Option<&CgDir> {
        self.unified.as_ref()
    }

    fn slot_mut(&mut self, slot: Slot) -> &mut Option<CgDir> {
        match slot {
            Slot::V1(c) => &mut self.v1[c.index()],
            Slot::Unified => &mut self.unified,
        }
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (Slot, &mut CgDir)> {
        let v1 = Controller::ALL
            .into_iter()
            .map(Slot::V1)
            .zip(self.v1.iter_mut());
        v1.chain([(Slot::Unified, &mut self.unified)])
            .filter_map(|(s, d)| d.as_mut().map(|d| (s, d)))
    }

    /// Whether the hybrid twin gives the CPU time, so v1's cpuacct is read by full reads only.
    fn twin(&self) -> bool {
        self.twin_ok && self.unified.is_some()
    }

    /// The first v1 directory in `PREFERENCE` order.
    pub(crate) fn any_v1(&self) -> Option<&CgDir> {
        PREFERENCE.into_iter().find_map(|c| self.v1(c))
    }

    /// A directory whose processes can be listed: the cgroup2 one on unified hosts, else a
    /// v1 one (the hybrid twin may hold none of them).
    pub(crate) fn procs_dir(&self, setup: Setup) -> Option<&CgDir> {
        if setup == Setup::Unified {
            self.unified()
        } else {
            self.any_v1().or(self.unified())
        }
    }

    /// The v1 directory the netlink cgroupstats query goes to: cpu, else cpuacct, else any.
    pub(crate) fn netlink_dir(&self) -> Option<&CgDir> {
        self.v1(Controller::Cpu)
            .or(self.v1(Controller::Cpuacct))
            .or(self.any_v1())
    }

    /// The directory whose ctime stands for the cgroup's creation.
    pub(crate) fn birth_dir(&self) -> Option<&Path> {
        self.unified()
            .or(self.v1(Controller::Cpu))
            .or(self.v1(Controller::Memory))
            .map(|d| d.path.as_path())
    }

    /// The directories its spec files are read from.
    pub(crate) fn spec_dirs(&self, setup: Setup) -> impl Iterator<Item = &Path> {
        let dirs = if setup == Setup::Unified {
            [self.unified(), None, None, None]
        } else {
            [
                Controller::Cpu,
                Controller::Cpuset,
                Controller::Memory,
                Controller::Pids,
            ]
            .map(|c| self.v1(c))
        };
        dirs.into_iter().flatten().map(|d| d.path.as_path())
    }

    /// With its files held, a container needs a directory descriptor only for the netlink
    /// load query; the others would only spend the budget. Spec files, read rarely, are then
    /// opened by path.
    pub(crate) fn hold_netlink_dir_only(&mut self, budget: &FdBudget) {
        let keep = if self.v1(Controller::Cpu).is_some() {
            Slot::V1(Controller::Cpu)
        } else {
            Slot::V1(Controller::Cpuacct)
        };
        for (slot, d) in self.iter_mut() {
            if slot == keep {
                d.hold(budget);
            } else {
                d.release();
            }
        }
    }

    /// Holds descriptors on the directories read from on sweeps, not on the spec-only one:
    /// those the probe reads come first; those only full reads need are held as `plan`
    /// allows, or let go to make room.
    pub(crate) fn hold(&mut self, plan: &mut DirPlan, budget: &FdBudget) {
        let twin = self.twin();
        for (slot, d) in self.iter_mut() {
            match use_of(slot, twin) {
                Use::Spec => d.release(),
                Use::Probe => d.hold(budget),
                Use::Full if d.is_held() => {
                    if plan.to_release > 0 {
                        d.release();
                        plan.to_release -= 1;
                    }
                }
                Use::Full => {
                    if plan.full_allowance > 0 {
                        d.hold(budget);
                        plan.full_allowance -= 1;
                    }
                }
            }
        }
    }

    /// Descriptors it would hold with room: every directory but the spec-only one.
    pub(crate) fn wanted(&self) -> usize {
        Slot::all()
            .filter(|&s| self.get(s).is_some() && use_of(s, self.twin()) != Use::Spec)
            .count()
    }

    /// Probe descriptors wanted and not held.
    pub(crate) fn probe_short(&self) -> usize {
        Slot::all()
            .filter(|&s| {
                use_of(s, self.twin()) == Use::Probe && self.get(s).is_some_and(|d| !d.is_held())
            })
            .count()
    }

    fn get(&self, slot: Slot) -> Option<&CgDir> {
        match slot {
            Slot::V1(c) => self.v1(c),
            Slot::Unified => self.unified(),
        }
    }

    /// Lets go of every descriptor (the directories may have been made again).
    pub(crate) fn release_all(&mut self) {
        self.iter_mut().for_each(|(_, d)| d.release());
    }
}
