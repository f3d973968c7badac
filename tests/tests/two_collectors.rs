//! What a collector holds belongs to it: two collectors in one process, over different roots
//! and with budgets of their own, sweep side by side without touching each other's
//! descriptors, and a dropped collector gives back its descriptors, inotify instances and
//! threads. One test in this binary, so the process's thread and descriptor counts are its
//! own.

use std::path::Path;
use std::time::{Duration, Instant};

use collector_core::{Collector, Config, FdBudget, Roots};
use tests::{sleeper, TestCgroup};

/// Open descriptors of this process, and how many of them are inotify instances.
fn open_fds() -> (usize, usize) {
    let links: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let inotify = links.iter().filter(|l| l.contains("inotify")).count();
    (links.len(), inotify)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Waits for `f` to hold (threads that were told to stop take a moment to exit).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_collectors_sweep_side_by_side_and_give_everything_back_on_drop() {
    tests::require_root();
    let (fds_before, inotify_before) = open_fds();
    let threads_before = threads();

    let mut cg = TestCgroup::new("ccol-two");
    cg.spawn(&mut sleeper());
    let host_budget = FdBudget::new(64);
    let host = Collector::with_budget(
        Config {
            include: vec![cg.id.clone()],
            ..Config::default()
        },
        host_budget.clone(),
    )
    .expect("this host's hierarchy");

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cgroup-v2-kubepods");
    let fixture_config = Config {
        roots: Roots::under(&fixture),
        descriptor_budget: Some(8),
        watch: false,
        load: false,
        ..Config::default()
    };
    let other = Collector::new(fixture_config).expect("the fixture's hierarchy");
    assert_ne!(
        host.hierarchy().setup,
        other.hierarchy().setup,
        "a hybrid host and a v2 fixture"
    );

    // Each on its own thread at once.
    let host_thread = std::thread::spawn(move || {
        let mut c = host;
        c.sweep();
        let s = c.sweep();
        (c, s)
    });
    let other_thread = std::thread::spawn(move || {
        let mut c = other;
        let s = c.sweep();
        (c, s)
    });
    let (host, host_snap) = host_thread.join().expect("the host sweep");
    let (other, other_snap) = other_thread.join().expect("the fixture sweep");

    let mine = host_snap
        .get(&cg.id)
        .expect("the test's cgroup on the host");
    assert_eq!(mine.stats.pids.current, Some(1));
    assert!(
        host_snap
            .containers
            .iter()
            .all(|c| c.id == cg.id || c.id == "/"),
        "only what its config includes"
    );
    assert!(
        other_snap.containers.len() > 2,
        "the fixture's containers: {:?}",
        other_snap
            .containers
            .iter()
            .map(|c| &c.id)
            .collect::<Vec<_>>()
    );
    assert!(
        other_snap.get(&cg.id).is_none(),
        "the fixture collector never sees the host"
    );

    // Each counts in its own budget, and says so.
    let r = host.resources();
    assert!(r.held_descriptors > 0, "{r:?}");
    assert_eq!(r.held_descriptors, host_budget.held());
    assert_eq!(r.descriptor_budget, 64);
    assert_eq!(r.inotify_instances, 2, "cgroups and specs watched: {r:?}");
    assert!(r.inotify_watches > 0, "{r:?}");
    let o = other.resources();
    assert!(o.held_descriptors <= 8, "within its own budget: {o:?}");
    assert_eq!(o.descriptor_budget, 8);
    assert_eq!(o.inotify_instances, 0, "watch off: {o:?}");
    assert_eq!(
        o.walker_threads, 0,
        "no overlay layer in the fixture: {o:?}"
    );

    let (_, inotify_with) = open_fds();
    assert_eq!(inotify_with, inotify_before + 2);
    assert!(threads() >= threads_before);

    drop(host);
    assert_eq!(
        host_budget.held(),
        0,
        "the host collector's descriptors closed"
    );
    drop(other);
    drop(cg);
    eventually("every inotify instance closed", || {
        open_fds().1 == inotify_before
    });
    eventually("the collectors' threads ended", || {
        threads() <= threads_before
    });
    let (fds_after, _) = open_fds();
    assert!(
        fds_after <= fds_before,
        "{fds_after} descriptors open after both were dropped, {fds_before} before"
    );
}
