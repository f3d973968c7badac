//! The background walkers: a few threads that measure writable layers on their own schedule,
//! so a sweep only ever looks up the last result.
//!
//! - **Interval**: each layer is walked again `interval` after its last walk finished.
//! - **Bounded concurrency**: `workers` threads (started at the first layer), niced and at the
//!   lowest best-effort IO priority, so the sweeps and the containers themselves come first.
//! - **Time budget**: a walk runs in slices of at most `budget`; a walk that is not done by then
//!   goes back in the queue behind the layers that are due, and carries on from where it stopped.
//! - **Back-off**: a layer whose walk needed more than one slice is walked at twice its previous
//!   interval (up to `max_backoff`); a walk that fits one slice resets it.
//!
//! Only complete walks are published: a sweep sees the last good value and when it was taken.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::statfs::Vfs;
use super::walk::{Step, Walk};

/// How the walkers are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub interval: Duration,
    pub workers: usize,
    pub budget: Duration,
    pub max_backoff: Duration,
}

/// One finished measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    pub bytes: u64,
    pub inodes: u64,
    pub major: u32,
    pub minor: u32,
    /// `statvfs` of the layer's filesystem when the walk finished.
    pub size_bytes: Option<u64>,
    pub avail_bytes: Option<u64>,
    pub files: Option<u64>,
    pub files_free: Option<u64>,
    /// When the walk finished (Unix milliseconds).
    pub finished_ms: u64,
    /// Wall time from the first slice's start to the end, pauses between slices included.
    pub elapsed: Duration,
    /// Interval multiplier now in force for this layer.
    pub backoff: u32,
}

#[derive(Debug)]
struct Entry {
    next_due: Instant,
    in_flight: bool,
    /// A walk paused at the end of a slice, with when its first slice started.
    partial: Option<(Walk, Instant)>,
    last: Option<Measured>,
    backoff: u32,
    /// Bumped when the entry is made again, so a walk of a forgotten layer is dropped.
    generation: u64,
    /// A first walk has ended (finished or failed).
    tried: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<PathBuf, Entry>,
    next_generation: u64,
    threads_started: bool,
}

#[derive(Debug)]
struct Shared {
    pace: Pace,
    state: Mutex<State>,
    wake: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked mid-update leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The walkers and their results, keyed by upper directory (as this process sees it).
#[derive(Debug)]
pub struct Walker {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Walker {
    pub fn new(pace: Pace) -> Walker {
        let pace = Pace {
            workers: pace.workers.max(1),
            interval: pace.interval.max(Duration::from_millis(10)),
            ..pace
        };
        Walker {
            shared: Arc::new(Shared {
                pace,
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                stop: AtomicBool::new(false),
            }),
            threads: Vec::new(),
        }
    }

    #[cfg(test)]
    /// Asks for `dir` to be measured from now on (no-op when it already is).
    pub fn want(&mut self, dir: &Path) {
        self.get(dir);
    }

    /// The last finished measurement of `dir`, asking for it to be measured from now on if
    /// it was not yet. One lock, for the sweep's per-container look-up.
    pub fn get(&mut self, dir: &Path) -> Option<Measured> {
        let mut st = self.shared.lock();
        if let Some(e) = st.entries.get(dir) {
            return e.last.map(|m| Measured {
                backoff: e.backoff,
                ..m
            });
        }
        st.next_generation += 1;
        let generation = st.next_generation;
        st.entries.insert(
            dir.to_path_buf(),
            Entry {
                next_due: Instant::now(),
                in_flight: false,
                partial: None,
                last: None,
                backoff: 1,
                generation,
                tried: false,
            },
        );
        let start = !st.threads_started;
        st.threads_started = true;
        drop(st);
        if start {
            self.spawn_workers();
        }
        self.shared.wake.notify_one();
        None
    }

    #[cfg(test)]
    /// The last finished measurement of `dir`.
    pub fn latest(&self, dir: &Path) -> Option<Measured> {
        let st = self.shared.lock();
        let e = st.entries.get(dir)?;
        e.last.map(|m| Measured {
            backoff: e.backoff,
            ..m
        })
    }

    /// Stops measuring `dir` (its container is gone); a walk of it in flight is discarded.
    pub fn forget(&mut self, dir: &Path) {
        self.shared.lock().entries.remove(dir);
    }

    /// Waits until every directory asked for has had a first walk end (or `timeout` passes);
    /// true when all have. For one-shot use (print a snapshot once), not for sweeps.
    pub fn settle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.lock().entries.values().all(|e| e.tried) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[cfg(test)]
    /// The directories being measured.
    pub fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Walker threads running: none until the first layer is asked for.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    fn spawn_workers(&mut self) {
        for i in 0..self.shared.pace.workers {
            let shared = self.shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("fs-walker-{i}"))
                .spawn(move || worker(&shared));
            match t {
                Ok(t) => self.threads.push(t),
                Err(e) => tracing::warn!("cannot start a filesystem walker thread: {e}"),
            }
        }
    }
}

impl Drop for Walker {
    fn drop(&mut self) {
        // Under the lock: a worker between its stop check and its wait would miss the wake-up.
        {
            let _st = self.shared.lock();
            self.shared.stop.store(true, Ordering::Relaxed);
        }
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(shared: &Shared) {
    lower_priority();
    let pace = shared.pace;
    let mut st = shared.lock();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        // The most overdue layer first; paused walks are due at once but queue behind those
        // that were due before them.
        let pick = st
            .entries
            .iter()
            .filter(|(_, e)| !e.in_flight)
            .min_by_key(|(_, e)| e.next_due)
            .map(|(p, e)| (p.clone(), e.next_due));
        let (dir, due) = match pick {
            Some((dir, due)) if due <= now => (dir, due),
            Some((_, due)) => {
                st = wait(shared, st, due - now);
                continue;
            }
            None => {
                st = wait(shared, st, Duration::from_secs(3600));
                continue;
            }
        };
        let _ = due;
        let Some(e) = st.entries.get_mut(&dir) else {
            continue;
        };
        e.in_flight = true;
        let generation = e.generation;
        let partial = e.partial.take();
        drop(st);

        let outcome = measure(&dir, partial, pace.budget, &shared.stop);

        st = shared.lock();
        let Some(e) = st
            .entries
            .get_mut(&dir)
            .filter(|e| e.generation == generation)
        else {
            continue;
        };
        e.in_flight = false;
        let now = Instant::now();
        if !matches!(outcome, Outcome::Paused(..)) {
            e.tried = true;
        }
        match outcome {
            Outcome::Done(mut m) => {
                let slices_over = m.backoff > 1;
                e.backoff = if slices_over {
                    let max = (pace.max_backoff.as_secs_f64() / pace.interval.as_secs_f64())
                        .max(1.0) as u32;
                    (e.backoff.saturating_mul(2)).clamp(1, max.max(1))
                } else {
                    1
                };
                m.backoff = e.backoff;
                e.last = Some(m);
                e.next_due = now + pace.interval * e.backoff;
            }
            Outcome::Paused(w, began) => {
                e.partial = Some((w, began));
                e.next_due = now;
            }
            Outcome::Failed => {
                // Gone or unreadable: try again at the next interval (the sweep forgets it
                // when its container goes).
                e.next_due = now + pace.interval * e.backoff;
            }
            Outcome::Stopped => return,
        }
    }
}

fn wait<'a>(shared: &'a Shared, st: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
    match shared.wake.wait_timeout(st, d) {
        Ok((g, _)) => g,
        Err(p) => p.into_inner().0,
    }
}

enum Outcome {
    Done(Measured),
    Paused(Walk, Instant),
    Failed,
    Stopped,
}

fn measure(
    dir: &Path,
    partial: Option<(Walk, Instant)>,
    budget: Duration,
    stop: &AtomicBool,
) -> Outcome {
    let (mut walk, began) = match partial {
        Some(p) => p,
        None => match Walk::start(dir) {
            Ok(w) => (w, Instant::now()),
            Err(e) => {
                tracing::debug!("cannot measure {}: {e}", dir.display());
                return Outcome::Failed;
            }
        },
    };
    match walk.run(budget, stop) {
        Step::Paused => Outcome::Paused(walk, began),
        Step::Stopped => Outcome::Stopped,
        Step::Done(t) => {
            // The tree may have gone while we walked it (its container was removed).
            if !dir.exists() {
                return Outcome::Failed;
            }
            let vfs = Vfs::stat(dir).unwrap_or_default();
            let dev = t.dev;
            Outcome::Done(Measured {
                bytes: t.bytes,
                inodes: t.inodes,
                major: libc::major(dev),
                minor: libc::minor(dev),
                size_bytes: vfs.size_bytes,
                avail_bytes: vfs.avail_bytes,
                files: vfs.files,
                files_free: vfs.files_free,
                finished_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                elapsed: began.elapsed(),
                // Carries "needed more than one slice" to the scheduler.
                backoff: if walk.slices > 1 { 2 } else { 1 },
            })
        }
    }
}

/// Walkers yield to everything else: nice 10 and the lowest best-effort IO priority, for this
/// thread only (Linux applies both per thread).
fn lower_priority() {
    let tid = nix::unistd::gettid().as_raw();
    // nix wraps neither setpriority nor ioprio_set.
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_BE: libc::c_long = 2;
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid as libc::c_long,
            (IOPRIO_CLASS_BE << 13) | 7,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(interval_ms: u64, budget_ms: u64) -> Pace {
        Pace {
            interval: Duration::from_millis(interval_ms),
            workers: 2,
            budget: Duration::from_millis(budget_ms),
            max_backoff: Duration::from_millis(interval_ms * 8),
        }
    }

    fn wait_for(w: &Walker, dir: &Path, ok: impl Fn(&Measured) -> bool) -> Measured {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(m) = w.latest(dir).filter(|m| ok(m)) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no measurement of {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn measures_again_each_interval() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Walker::new(pace(50, 1000));
        assert!(w.latest(d.path()).is_none());
        w.want(d.path());
        assert!(w.settle(Duration::from_secs(20)));
        let first = w.latest(d.path()).unwrap();
        assert_eq!(first.inodes, 1);
        assert!(first.size_bytes.unwrap() > 0);
        assert_eq!(first.backoff, 1);
        std::fs::write(d.path().join("f"), vec![7u8; 1 << 20]).unwrap();
        let second = wait_for(&w, d.path(), |m| m.inodes == 2);
        assert!(second.bytes >= first.bytes + (1 << 20));
        assert!(second.finished_ms >= first.finished_ms);
        w.forget(d.path());
        assert!(w.latest(d.path()).is_none());
        assert!(w.is_empty());
    }

    #[test]
    fn slow_trees_back_off_and_still_finish() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..2000 {
            std::fs::write(d.path().join(format!("f{i}")), b"").unwrap();
        }
        // A zero budget: every walk takes many slices.
        let mut w = Walker::new(pace(20, 0));
        w.want(d.path());
        let m = wait_for(&w, d.path(), |m| m.backoff >= 4);
        assert_eq!(m.inodes, 2001);
        // Capped at max_backoff / interval.
        let m = wait_for(&w, d.path(), |m| m.backoff == 8);
        assert_eq!(m.inodes, 2001);
    }

    #[test]
    fn missing_directory_gives_nothing_and_drop_joins() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("gone");
        let mut w = Walker::new(pace(10, 100));
        w.want(&gone);
        assert!(w.settle(Duration::from_secs(20)));
        assert!(w.latest(&gone).is_none());
        drop(w);
    }
}
