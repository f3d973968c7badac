//! Runnable and uninterruptible tasks per container, and their 10 s decaying averages
//! (cAdvisor's load reader).
//!
//! The kernel's netlink cgroupstats answers for a v1 cgroup directory in one round trip (about
//! 3 us plus 65 ns per task here). For cgroup2 (which cgroupstats refuses with EINVAL) each
//! task's state is read from `/proc/<tid>/stat`; that costs one read per task, so it runs
//! under a per-sweep task budget and the containers past the budget get no load figures in
//! that sweep.
//!
//! The two sources agree on running and uninterruptible tasks, which feed the averages. They
//! differ on sleeping: since Linux 6.1, tasks in `nanosleep` or a futex wait sleep in a state
//! cgroupstats counts nowhere, so netlink's `sleeping` misses them while procfs counts them.

pub mod netlink;

use std::path::{Path, PathBuf};

use crate::parse;
use crate::read::{Dir, Reader};
use crate::stats::{LoadSource, LoadStats};
use netlink::{CgroupStatsSocket, TaskCounts};

/// How the average forgets: e^(-dt/10s), as cAdvisor's `loadDecay` for its interval.
const WINDOW_SECS: f64 = 10.0;

/// Reads task counts, preferring netlink.
pub struct LoadReader {
    proc_root: PathBuf,
    socket: Option<CgroupStatsSocket>,
    /// Tasks that may still be read through procfs in this sweep.
    budget_left: usize,
    pub budget_per_sweep: usize,
    task_dir: PathBuf,
}

impl std::fmt::Debug for LoadReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadReader")
            .field("netlink", &self.socket.is_some())
            .field("budget_per_sweep", &self.budget_per_sweep)
            .finish()
    }
}

impl LoadReader {
    /// `budget_per_sweep` bounds the procfs fallback: at most that many task stat files a sweep.
    pub fn new(proc_root: &Path, budget_per_sweep: usize) -> Self {
        LoadReader {
            proc_root: proc_root.to_path_buf(),
            // Without taskstats in the kernel, procfs is the way.
            socket: CgroupStatsSocket::open().ok(),
            budget_left: budget_per_sweep,
            budget_per_sweep,
            task_dir: PathBuf::new(),
        }
    }

    pub fn begin_sweep(&mut self) {
        self.budget_left = self.budget_per_sweep;
    }

    /// Task counts of one cgroup. `v1_dir` is a v1 directory of it (netlink takes those);
    /// `tasks_dir` a directory whose `tasks` (v1) or `cgroup.threads` (v2) lists its threads.
    /// `None` when the budget is spent or the cgroup vanished.
    pub fn counts(
        &mut self,
        r: &mut Reader,
        v1_dir: Option<Dir<'_>>,
        tasks_dir: Dir<'_>,
        v2: bool,
    ) -> Option<(TaskCounts, LoadSource)> {
        if let (Some(sock), Some(dir)) = (self.socket.as_mut(), v1_dir) {
            let answer = match dir.fd {
                Some(fd) => sock.query_fd(fd),
                None => sock.query(dir.path),
            };
            if let Ok(c) = answer {
                return Some((c, LoadSource::Netlink));
            }
        }
        if self.budget_left == 0 {
            return None;
        }
        let list = if v2 { "cgroup.threads" } else { "tasks" };
        let text = r.read(tasks_dir, list)?.to_string();
        let mut c = TaskCounts::default();
        let mut source = LoadSource::Procfs;
        for line in text.lines() {
            let Ok(tid) = line.trim().parse::<u32>() else {
                continue;
            };
            if self.budget_left == 0 {
                source = LoadSource::Truncated;
                break;
            }
            self.budget_left -= 1;
            // /proc/<tid>/stat answers for any thread id, listed in /proc or not.
            self.task_dir.clear();
            self.task_dir.push(&self.proc_root);
            self.task_dir.push(tid.to_string());
            let dir = std::mem::take(&mut self.task_dir);
            let state = r.read(&dir, "stat").and_then(parse::task_state);
            self.task_dir = dir;
            match state {
                Some(b'R') => c.running += 1,
                Some(b'D') => c.uninterruptible += 1,
                Some(b'S') | Some(b'I') => c.sleeping += 1,
                Some(b'T') | Some(b't') => c.stopped += 1,
                // Exited meanwhile (None), zombie or dead: not a task that loads the CPU.
                _ => {}
            }
        }
        // A thread that exited between listing and reading is not a vanished container.
        r.forgive_missing();
        Some((c, source))
    }
}

/// Folds one observation into the decaying averages. `prev` is the last value and the seconds
/// since it was computed; without one the average starts at the observation.
pub fn update_average(
    prev: Option<(LoadStats, f64)>,
    c: TaskCounts,
    source: LoadSource,
) -> LoadStats {
    let (avg, avg_d) = match prev {
        Some((p, dt)) if dt > 0.0 => {
            let decay = (-dt / WINDOW_SECS).exp();
            (
                p.load_average_10s * decay + c.running as f64 * (1.0 - decay),
                p.load_d_average_10s * decay + c.uninterruptible as f64 * (1.0 - decay),
            )
        }
        Some((p, _)) => (p.load_average_10s, p.load_d_average_10s),
        None => (c.running as f64, c.uninterruptible as f64),
    };
    LoadStats {
        running: c.running,
        sleeping: c.sleeping,
        stopped: c.stopped,
        uninterruptible: c.uninterruptible,
        io_wait: c.io_wait,
        load_average_10s: avg,
        load_d_average_10s: avg_d,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_decays_toward_observation() {
        let c = TaskCounts {
            running: 4,
            ..Default::default()
        };
        let first = update_average(None, c, LoadSource::Procfs);
        assert_eq!(first.load_average_10s, 4.0);
        let idle = TaskCounts::default();
        let after = update_average(Some((first, 10.0)), idle, LoadSource::Procfs);
        // One window later, e^-1 of the old value remains.
        assert!((after.load_average_10s - 4.0 * (-1.0f64).exp()).abs() < 1e-9);
        let same = update_average(Some((after, 0.0)), c, LoadSource::Procfs);
        assert_eq!(same.load_average_10s, after.load_average_10s);
    }
}
