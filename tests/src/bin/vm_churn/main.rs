//! The churn soak of `benches/soak/churn.py`, inside the cgroup v2 VM of `tests/vm/run.sh`
//! (no Python there): STABLE containers stay while RATE a minute are made and destroyed for
//! DURATION seconds, each a cgroup under `/sys/fs/cgroup/churn` with one `/bin/sleep` in a
//! network namespace of its own, living MIN_LIFE..MAX_LIFE seconds. The exporter
//! (`/extra/collector-exporter` or `/extra/exporter`, put there by `VM_EXTRA`) sweeps them
//! every INTERVAL and is scraped every second. Prints one JSON line of the figures churn.py
//! prints: sweep errors, started and stopped events against the truth, RSS, descriptors,
//! threads, inotify watches, held descriptors and slab before and after, scrape latency.
//!
//! Exit code 0 with the figures (judging them is the caller's business), 2 on bad arguments,
//! 1 when the soak could not be run. Every process it started is killed and every cgroup it
//! made is removed on the way out.

mod args;
mod container;
mod watch;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use args::Args;
use container::Container;
use watch::{round1, Scraper, State};

const CGROUP2: &str = "/sys/fs/cgroup";
const PARENT: &str = "churn";
/// The exporter keeps the last 1,000 events: gathered every 5 s, none is lost below 200 a
/// second.
const EVENTS_EVERY_SCRAPES: usize = 5;

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vm_churn: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(figures) => {
            println!("{figures}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vm_churn: {e}");
            ExitCode::from(1)
        }
    }
}

fn log(msg: &str) {
    eprintln!("vm_churn: {msg}");
}

/// What was made, and when, and what happened to it: the truth the events are held to.
struct Made {
    id: String,
    born_s: f64,
    died_s: Option<f64>,
}

/// The churn's cgroups and processes; dropping it kills every process and removes every
/// cgroup, whatever the outcome.
struct Churn {
    parent: PathBuf,
    stable: Vec<Container>,
    /// (when it is to die, container, index in `made`)
    alive: Vec<(Instant, Container, usize)>,
    made: Vec<Made>,
    start: Instant,
}

impl Churn {
    fn new() -> Result<Churn, String> {
        let root = Path::new(CGROUP2);
        if !root.join("cgroup.procs").is_file() {
            return Err(format!("{CGROUP2} is no cgroup2 mount"));
        }
        let parent = root.join(PARENT);
        std::fs::create_dir(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let churn = Churn {
            parent,
            stable: Vec::new(),
            alive: Vec::new(),
            made: Vec::new(),
            start: Instant::now(),
        };
        // The controllers a runtime would give each container, so the exporter reads the
        // files it reads of real ones. What the root does not offer is left out.
        let offered = std::fs::read_to_string(root.join("cgroup.subtree_control"))
            .map_err(|e| format!("root cgroup.subtree_control: {e}"))?;
        for c in ["cpu", "memory", "io", "pids"] {
            if offered.split_whitespace().any(|o| o == c) {
                let f = churn.parent.join("cgroup.subtree_control");
                std::fs::write(&f, format!("+{c}"))
                    .map_err(|e| format!("{}: +{c}: {e}", f.display()))?;
            }
        }
        Ok(churn)
    }

    fn make(&self, name: &str) -> Result<Container, String> {
        Container::start(&self.parent, &format!("/{PARENT}/{name}"), name)
            .map_err(|e| format!("container {name}: {e}"))
    }

    fn make_churned(&mut self, seq: usize, life: Duration) -> Result<(), String> {
        let c = self.make(&format!("c{seq}"))?;
        self.made.push(Made {
            id: c.id.clone(),
            born_s: self.since_start(c.born),
            died_s: None,
        });
        self.alive.push((c.born + life, c, self.made.len() - 1));
        Ok(())
    }

    /// Destroys the churned containers whose time has come; how many.
    fn destroy_due(&mut self, now: Instant) -> Result<usize, String> {
        let mut n = 0;
        let mut i = 0;
        while i < self.alive.len() {
            if self.alive[i].0 > now {
                i += 1;
                continue;
            }
            let (_, c, at) = self.alive.swap_remove(i);
            let id = c.id.clone();
            c.destroy().map_err(|e| format!("destroying {id}: {e}"))?;
            self.made[at].died_s = Some(self.since_start(Instant::now()));
            n += 1;
        }
        Ok(n)
    }

    fn since_start(&self, t: Instant) -> f64 {
        round1(t.saturating_duration_since(self.start).as_secs_f64())
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        // Each container kills its process and removes its cgroup as it is dropped.
        self.alive.clear();
        self.stable.clear();
        if let Err(e) = container::remove_tree(&self.parent) {
            log(&format!("cleanup: {e}"));
        }
    }
}

/// The median and the largest RSS of each minute of the churn (`[median, max]`), to tell
/// growth from a passing peak.
fn rss_by_minute(samples: &[(Instant, f64)], start: Instant, duration_s: f64) -> Vec<Value> {
    let minutes = (duration_s / 60.0).ceil() as usize;
    (0..minutes)
        .map(|m| {
            let of_minute: Vec<f64> = samples
                .iter()
                .filter(|(t, _)| {
                    t.checked_duration_since(start).is_some_and(|d| {
                        d.as_secs_f64() < duration_s && d.as_secs() / 60 == m as u64
                    })
                })
                .map(|(_, v)| *v)
                .collect();
            match watch::median_max(&of_minute) {
                Some((median, max)) => json!([median, max]),
                None => Value::Null,
            }
        })
        .collect()
}

/// A small xorshift generator: lifetimes need no better, and the tests crate has no `rand`.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let s = if seed != 0 {
            seed
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        };
        Rng(s | 1)
    }

    /// Uniform in [lo, hi].
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo) * (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The busy workload of tests/vm/init.sh burns half a CPU; frozen, it leaves the VM to the
/// churn. Absent (another init), nothing to do.
fn freeze_busy_workload() {
    let f = Path::new(CGROUP2).join("test.slice/busy/cgroup.freeze");
    if f.exists() {
        if let Err(e) = std::fs::write(&f, "1") {
            log(&format!("could not freeze test.slice/busy: {e}"));
        }
    }
}

/// Waits until the exporter has swept twice with every stable container in.
fn wait_ready(ex: &tests::Exporter, stable: usize) -> Result<State, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let pid = ex.child.id();
    loop {
        let s = State::read(pid, ex.addr);
        match &s {
            Ok(s) if s.sweeps >= 2.0 && s.containers >= stable as f64 => return Ok(s.clone()),
            _ if Instant::now() > deadline => {
                return Err(format!(
                    "the exporter did not sweep the {stable} stable containers within 120 s: {s:?}"
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn run(a: &Args) -> Result<Value, String> {
    let wall = Instant::now();
    if !a.exporter.is_file() {
        return Err(format!(
            "no exporter at {} (tests/vm/run.sh puts VM_EXTRA's files in /extra)",
            a.exporter.display()
        ));
    }
    freeze_busy_workload();
    let mut churn = Churn::new()?;
    for i in 0..a.stable {
        let c = churn.make(&format!("s{i}"))?;
        churn.stable.push(c);
    }
    log(&format!(
        "{} stable containers made in {:.1}s",
        a.stable,
        wall.elapsed().as_secs_f64()
    ));

    let exporter = a.exporter.to_string_lossy().into_owned();
    let include = format!("/{PARENT}");
    let mut flags = vec![
        "--housekeeping.interval",
        a.interval.as_str(),
        "--cgroups.include",
        include.as_str(),
    ];
    flags.extend(tests::NO_RUNTIMES);
    flags.extend(a.exporter_flags.iter().map(String::as_str));
    let mut ex = tests::Exporter::start(&exporter, &flags);
    let pid = ex.child.id();
    wait_ready(&ex, a.stable)?;
    // A few sweeps more, for a baseline past the first sweeps' one-off work.
    std::thread::sleep(Duration::from_secs(3));
    let before = State::read(pid, ex.addr)?;
    log(&format!("before the churn: {:?}", before));

    let scraper = Scraper::start(ex.addr, pid, EVENTS_EVERY_SCRAPES);
    let mut rng = Rng::new(a.seed);
    let per_s = a.rate_per_min / 60.0;
    // At most a second's worth at once: creation lagging on a slow VM catches up gently.
    let burst = (per_s.ceil() as usize).max(1);
    let (mut created, mut destroyed, mut due) = (0usize, 0usize, 0usize);
    let mut warm = None;
    churn.start = Instant::now();
    loop {
        let now = Instant::now();
        let t = now.duration_since(churn.start).as_secs_f64();
        if t >= a.duration_s {
            break;
        }
        if warm.is_none() && t >= a.warmup_s {
            let w = State::read(pid, ex.addr)?;
            log(&format!("after the warm-up: {w:?}"));
            warm = Some(w);
        }
        destroyed += churn.destroy_due(now)?;
        due = (per_s * t) as usize + 1;
        for _ in 0..due.saturating_sub(created).min(burst) {
            let life = rng.uniform(a.min_life_s, a.max_life_s);
            churn.make_churned(created, Duration::from_secs_f64(life))?;
            created += 1;
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(now.elapsed()));
    }
    // Containers the schedule asked for by the last tick that could not be made in time.
    let behind = due.saturating_sub(created);
    let end_churn = State::read(pid, ex.addr)?;
    log(&format!("end of the churn: {end_churn:?}"));
    // The last ones live out their lives too: one destroyed at once could be seen by no
    // sweep, which would be no miss.
    while !churn.alive.is_empty() {
        destroyed += churn.destroy_due(Instant::now())?;
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs_f64(a.settle_s));
    let after = State::read(pid, ex.addr)?;
    log(&format!("settled: {after:?}"));
    let scrapes = scraper.finish();
    let status = ex.stop();
    if !status.success() {
        log(&format!("the exporter exited with {status}"));
    }
    let warm = warm.unwrap_or_else(|| before.clone());
    // What the exporter complained of, for a look when a figure is off.
    let complaints: Vec<String> = ex
        .log
        .lock()
        .map(|l| {
            l.lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();

    let made_ids: BTreeSet<&str> = churn.made.iter().map(|m| m.id.as_str()).collect();
    let destroyed_ids: BTreeSet<&str> = churn
        .made
        .iter()
        .filter(|m| m.died_s.is_some())
        .map(|m| m.id.as_str())
        .collect();
    let missing = |seen: &BTreeSet<String>, truth: &BTreeSet<&str>| -> Vec<Value> {
        churn
            .made
            .iter()
            .filter(|m| truth.contains(m.id.as_str()) && !seen.contains(&m.id))
            .take(20)
            .map(|m| {
                json!({"id": m.id, "made_at_s": m.born_s,
                       "lived_s": m.died_s.map(|d| round1(d - m.born_s))})
            })
            .collect()
    };
    let invented = |seen: &BTreeSet<String>, truth: &BTreeSet<&str>| -> Vec<String> {
        seen.iter()
            .filter(|id| !truth.contains(id.as_str()))
            .take(20)
            .cloned()
            .collect()
    };
    let ok = scrapes.latencies.iter().flatten().count();
    let rss_by_minute = rss_by_minute(&scrapes.rss, churn.start, a.duration_s);
    // Flat after the warm-up: the medians of its first and second half, read each second.
    let mid_s = (a.warmup_s + a.duration_s) / 2.0;
    let rss_between = |from_s: f64, to_s: f64| -> Option<(f64, f64)> {
        let v: Vec<f64> = scrapes
            .rss
            .iter()
            .filter(|(t, _)| {
                let s = t.saturating_duration_since(churn.start).as_secs_f64();
                from_s <= s && s < to_s
            })
            .map(|(_, v)| *v)
            .collect();
        watch::median_max(&v)
    };
    let (early, late) = (
        rss_between(a.warmup_s, mid_s),
        rss_between(mid_s, a.duration_s),
    );
    let churn_max = rss_between(a.warmup_s, a.duration_s).map(|m| m.1);
    let figures = json!({
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string()).unwrap_or_default(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "stable": a.stable, "rate_per_min": a.rate_per_min, "duration_s": a.duration_s,
        "interval": a.interval, "min_life_s": a.min_life_s, "max_life_s": a.max_life_s,
        "exporter_flags": a.exporter_flags,
        "created": created, "destroyed": destroyed, "behind_schedule": behind,
        "started_events": after.started - before.started,
        "stopped_events": after.stopped - before.stopped,
        "sweep_errors": after.sweep_errors - before.sweep_errors,
        "sweeps": after.sweeps - before.sweeps,
        "rss_mb": {"before": before.rss_mb, "after_warmup": warm.rss_mb,
                   "end_of_churn": end_churn.rss_mb, "settled": after.rss_mb,
                   // Read each second: the medians of the first and second half of the churn
                   // after the warm-up, and the largest reading.
                   "early_median": early.map(|m| m.0), "late_median": late.map(|m| m.0),
                   "churn_max": churn_max},
        "rss_mb_by_minute": rss_by_minute,
        "fds": {"before": before.fds, "settled": after.fds},
        "threads": {"before": before.threads, "end_of_churn": end_churn.threads,
                    "settled": after.threads},
        "held_descriptors": {"before": before.held_descriptors,
                             "settled": after.held_descriptors},
        "inotify_watches": {"before": before.inotify_watches, "settled": after.inotify_watches},
        "containers": {"before": before.containers, "end_of_churn": end_churn.containers,
                       "settled": after.containers},
        "slab_mb": {"before": before.slab_mb, "settled": after.slab_mb},
        "sweep_s_end_of_churn": end_churn.sweep_s,
        // The last sweep's duration at each scrape, from the churn's start to the end.
        "sweep_ms": {"p50": watch::quantile_ms(&scrapes.sweep_s, 0.5),
                     "p99": watch::quantile_ms(&scrapes.sweep_s, 0.99),
                     "max": watch::quantile_ms(&scrapes.sweep_s, 1.0)},
        "scrapes": scrapes.latencies.len(), "scrapes_failed": scrapes.latencies.len() - ok,
        "scrape_ms": {"p50": watch::quantile_ms(&scrapes.latencies, 0.5),
                      "p99": watch::quantile_ms(&scrapes.latencies, 0.99),
                      "max": watch::quantile_ms(&scrapes.latencies, 1.0)},
        "failures": scrapes.failures.iter().take(5).collect::<Vec<_>>(),
        "exporter_warnings": complaints.len(),
        "exporter_warnings_first": complaints.iter().take(5).collect::<Vec<_>>(),
        // From /api/v1/events: which containers had no start or stop, or one never made.
        "missed_starts": missing(&scrapes.started_ids, &made_ids),
        "missed_stops": missing(&scrapes.stopped_ids, &destroyed_ids),
        "invented_starts": invented(&scrapes.started_ids, &made_ids),
        "invented_stops": invented(&scrapes.stopped_ids, &destroyed_ids),
        "wall_s": round1(wall.elapsed().as_secs_f64()),
    });
    if !status.success() {
        return Err(format!(
            "the exporter exited with {status}; figures: {figures}"
        ));
    }
    Ok(figures)
}
