//! Directory descriptors the collector holds on cgroup directories (to open files with
//! `openat`): a cgroup removed and made again under the same name is read afresh, a spent
//! budget falls back to full paths, and nothing is held for cgroups that are gone.
//! Each test's collectors count against a budget of its own, so they run side by side.

use std::process::Command;
use std::time::Duration;

use collector_core::{Collector, Config, FdBudget};
use tests::{sleeper, NetnsPair, TestCgroup};

/// Each test's own budget: the default comes from the soft `RLIMIT_NOFILE`, which may be as
/// low as 1,024 (a budget of 0) where CI runs.
const AMPLE: usize = 4_096;

fn collector(id: &str, budget: &FdBudget) -> Collector {
    collector_holding(id, false, budget)
}

fn collector_holding(id: &str, hold_files: bool, budget: &FdBudget) -> Collector {
    Collector::with_budget(
        Config {
            hold_files,
            include: vec![id.to_string()],
            // No inotify and no rescan: the held descriptors alone must notice the change.
            watch: false,
            rescan_interval: Duration::from_secs(3600),
            // Spec reads are never held: with a long interval, the sweeps after the first read
            // only hot files.
            spec_interval: if hold_files {
                Duration::from_secs(3600)
            } else {
                Duration::ZERO
            },
            network: false,
            // Every sweep a full one: idle sweeps would hold only the probe files.
            idle_interval: Duration::ZERO,
            ..Config::default()
        },
        budget.clone(),
    )
    .expect("cgroup hierarchy")
}

#[test]
fn held_directories_follow_removal_recreation_and_the_budget() {
    let budget = FdBudget::new(AMPLE);
    let mut cg = TestCgroup::new("ccol-held");
    // Every directory but cpuset's (read for the spec only, by path).
    let dirs = cg
        .dirs()
        .iter()
        .filter(|d| !d.to_string_lossy().contains("cpuset"))
        .count();
    cg.set("pids", "pids.max", "10");
    cg.spawn(&mut sleeper());
    let before = budget.held();
    let mut col = collector(&cg.id, &budget);
    let s = col.sweep();
    let c = s.get(&cg.id).expect("found");
    assert_eq!(c.stats.pids.current, Some(1));
    assert_eq!(c.stats.pids.limit, Some(10));
    // cpu and cpuacct may share one directory; each controller's slot holds its own.
    let held = budget.held() - before;
    assert!(held >= dirs, "{held} held for {dirs} directories");

    // Removed and made again under the same name, with new settings and two processes:
    // the old descriptors point at the removed directories.
    cg.recreate();
    cg.set("pids", "pids.max", "20");
    cg.spawn(&mut sleeper());
    cg.spawn(&mut sleeper());
    let s = col.sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let c = s.get(&cg.id).expect("still followed");
    assert_eq!(
        c.stats.pids.current,
        Some(2),
        "read through the new directory"
    );
    assert_eq!(c.stats.pids.limit, Some(20));
    assert!(c.stats.memory.usage_bytes.is_some());
    // Reopened on the new directories at the next read, and read through them.
    let s = col.sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.get(&cg.id).unwrap().stats.pids.current, Some(2));
    assert_eq!(budget.held() - before, held);

    // No budget: nothing new is held, and every figure is still read by path.
    drop(col);
    assert_eq!(budget.held(), before, "dropping the collector closes them");
    budget.set_limit(before);
    let mut col = collector(&cg.id, &budget);
    let s = col.sweep();
    budget.set_limit(AMPLE);
    assert_eq!(budget.held(), before);
    let c = s.get(&cg.id).expect("found by path");
    assert_eq!(c.stats.pids.current, Some(2));
    assert!(c.stats.cpu.usage_ns.is_some());
    assert!(s.errors.is_empty(), "{:?}", s.errors);

    // Gone for good: dropped from the sweep, descriptors closed.
    let mut col = collector(&cg.id, &budget);
    col.sweep();
    assert!(budget.held() > before);
    drop(cg);
    let s = col.sweep();
    assert!(s.containers.is_empty(), "{:?}", s.containers);
    assert_eq!(budget.held(), before);
}

/// With `hold_files`, the files read on every sweep stay open and are read with `pread`:
/// figures still move, a cgroup made again under the same name is read afresh, and everything
/// is closed when the cgroup goes.
#[test]
fn held_files_are_read_again_and_let_go() {
    let budget = FdBudget::new(AMPLE);
    let mut cg = TestCgroup::new("ccol-heldf");
    cg.spawn(&mut sleeper());
    let mut col = collector_holding(&cg.id, true, &budget);
    let base = budget.held();
    // The first sweep reads the spec too, and holds no file; the second holds the hot
    // files; from the third on only the cpu directory is held besides them.
    col.sweep();
    col.sweep();
    let a = col.sweep();
    let held = budget.held() - base;
    assert!(held >= 10, "only {held} descriptors held");
    let mut burn = Command::new("sh");
    burn.args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]);
    cg.spawn(&mut burn);
    std::thread::sleep(Duration::from_millis(300));
    let b = col.sweep();
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let (ua, ub) = (
        a.get(&cg.id).unwrap().stats.cpu.usage_ns.unwrap(),
        b.get(&cg.id).unwrap().stats.cpu.usage_ns.unwrap(),
    );
    assert!(
        ub > ua,
        "usage did not move through held files: {ua} -> {ub}"
    );
    assert_eq!(
        budget.held() - base,
        held,
        "no new descriptors in steady state"
    );

    cg.recreate();
    cg.set("pids", "pids.max", "7");
    cg.spawn(&mut sleeper());
    let s = col.sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let c = &s.get(&cg.id).expect("still followed").stats;
    assert_eq!(c.pids.current, Some(1), "read through the new directory");
    // The new cgroup's limits are read at the next sweep, not after the hour-long interval.
    let s = col.sweep();
    assert_eq!(s.get(&cg.id).unwrap().stats.pids.limit, Some(7));
    let s = col.sweep();
    assert_eq!(s.get(&cg.id).unwrap().stats.pids.current, Some(1));
    assert!(s.errors.is_empty(), "{:?}", s.errors);

    drop(cg);
    let s = col.sweep();
    assert!(s.containers.is_empty(), "{:?}", s.containers);
    assert_eq!(budget.held(), base, "all closed once the cgroup is gone");
}

/// Pid lists are never held: v1 keeps serving an open `cgroup.procs` the list it built at its
/// first read (for a second after the last one), so a process that joins an empty container
/// would stay unseen while sweeps come quickly.
#[test]
fn a_process_joining_an_empty_container_is_seen_with_files_held() {
    let budget = FdBudget::new(AMPLE);
    let pair = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-heldp");
    let mut col = Collector::with_budget(
        Config {
            include: vec![cg.id.clone()],
            watch: false,
            rescan_interval: Duration::from_secs(3600),
            spec_interval: Duration::from_secs(3600),
            hold_files: true,
            ..Config::default()
        },
        budget.clone(),
    )
    .expect("cgroup hierarchy");
    for _ in 0..4 {
        let s = col.sweep();
        let n = &s.get(&cg.id).expect("found").stats.network;
        assert_eq!(n.status, collector_core::NetworkStatus::NoProcess);
    }
    cg.spawn(&mut tests::NetnsPair::exec(&pair.a, "sleep", &["30"]));
    std::thread::sleep(Duration::from_millis(100));
    let s = col.sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let n = &s.get(&cg.id).unwrap().stats.network;
    assert_eq!(n.status, collector_core::NetworkStatus::Own, "{n:?}");
    assert!(n.interfaces.iter().any(|i| i.name == pair.a_if), "{n:?}");
}

/// With files held and idle reads on, an idle sweep reads the probe files only, and the other
/// held files stay open for the next full read (no closing and reopening in between).
#[test]
fn held_files_stay_open_over_idle_sweeps() {
    let budget = FdBudget::new(AMPLE);
    let mut cg = TestCgroup::new("ccol-heldidle");
    cg.spawn(&mut sleeper());
    let mut col = Collector::with_budget(
        Config {
            include: vec![cg.id.clone()],
            watch: false,
            rescan_interval: Duration::from_secs(3600),
            spec_interval: Duration::from_secs(3600),
            network: false,
            hold_files: true,
            ..Config::default()
        },
        budget.clone(),
    )
    .expect("cgroup hierarchy");
    let base = budget.held();
    let mut idle_at = None;
    for i in 0..80 {
        let s = col.sweep();
        if s.get(&cg.id).expect("found").idle {
            idle_at = Some(i);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(idle_at.is_some(), "never read as idle");
    let held = budget.held() - base;
    assert!(held >= 10, "only {held} descriptors held");
    for _ in 0..3 {
        let s = col.sweep();
        assert!(s.get(&cg.id).unwrap().idle);
        assert_eq!(
            budget.held() - base,
            held,
            "held files let go on an idle sweep"
        );
    }
    // Activity: a full read through the same held files, figures moving.
    let before = col.sweep().get(&cg.id).unwrap().stats.cpu.usage_ns;
    let mut burn = Command::new("sh");
    burn.args(["-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"]);
    let pid = cg.spawn(&mut burn);
    std::thread::sleep(Duration::from_millis(50));
    let s = col.sweep();
    let c = s.get(&cg.id).unwrap();
    assert!(!c.idle && c.stats.cpu.usage_ns > before);
    assert!(c.stats.memory.rss_bytes.is_some());
    cg.kill(pid);
    assert!(budget.held() - base >= held);
}

/// Descriptors held on directories whose path contains `part`, per cgroup id of `ids`.
fn held_in(part: &str, ids: &[&str]) -> Vec<usize> {
    let links: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    ids.iter()
        .map(|id| {
            links
                .iter()
                .filter(|l| l.ends_with(id) && l.contains(&format!("/{part}/")))
                .count()
        })
        .collect()
}

/// A budget too small for every directory goes first to those every sweep reads (memory,
/// pids, the cgroup2 twin) of every container, and the directories only full reads use (cpu,
/// cpuacct, blkio) are let go to make room for containers found later. Before, the first
/// containers found kept everything and later ones got nothing.
#[test]
fn a_short_budget_holds_every_containers_probe_first() {
    let budget = FdBudget::new(AMPLE);
    let mut cgs: Vec<TestCgroup> = (0..4).map(|_| TestCgroup::new("ccol-tier")).collect();
    // The last two come later.
    cgs[2].remove();
    cgs[3].remove();
    for cg in &mut cgs[..2] {
        cg.spawn(&mut sleeper());
    }
    let owned: Vec<String> = cgs.iter().map(|c| c.id.clone()).collect();
    let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
    let probe = ["memory", "pids", "unified"];
    let full = ["cpu", "cpuacct", "blkio"];

    let before = budget.held();
    let mut col = Collector::with_budget(
        Config {
            include: owned.clone(),
            watch: false,
            rescan_interval: Duration::from_secs(3600),
            network: false,
            idle_interval: Duration::ZERO,
            ..Config::default()
        },
        budget.clone(),
    )
    .expect("cgroup hierarchy");
    // Ample: everything held.
    col.sweep();
    for part in probe.iter().chain(&full) {
        assert_eq!(
            held_in(part, &ids[..2]),
            [1, 1],
            "{part} held with an ample budget"
        );
    }
    let two = budget.held() - before;
    assert_eq!(two, 12, "six directories each");

    // Exactly what is held now: two more containers need room.
    budget.set_limit(before + two);
    cgs[2].recreate();
    cgs[3].recreate();
    cgs[2].spawn(&mut sleeper());
    cgs[3].spawn(&mut sleeper());
    col.rescan_soon();
    let s = col.sweep();
    // A second sweep: what the first let go late in its loop is taken now.
    let s2 = col.sweep();
    budget.set_limit(AMPLE);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(s2.errors.is_empty(), "{:?}", s2.errors);
    for part in probe {
        assert_eq!(
            held_in(part, &ids),
            [1, 1, 1, 1],
            "{part}: every probe held"
        );
    }
    let full_held: usize = full
        .iter()
        .map(|p| held_in(p, &ids).iter().sum::<usize>())
        .sum();
    assert_eq!(full_held, 0, "full-read directories let go for the probes");
    assert_eq!(budget.held() - before, 12, "within the budget");
    // Every container is still read in full, by path where nothing is held.
    for id in &ids {
        let c = s2.get(id).expect("followed");
        assert_eq!(c.stats.pids.current, Some(1), "{id}");
        assert!(c.stats.cpu.usage_ns.is_some(), "{id}");
        assert!(
            c.stats.cpu.nr_periods.is_some(),
            "{id}: cpu.stat of the cpu directory"
        );
        assert!(c.stats.memory.usage_bytes.is_some(), "{id}");
    }
}
