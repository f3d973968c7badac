//! Idle containers on real cgroups (`Config::idle_interval`, collector-core/src/idle.rs): a
//! container doing nothing has only its probe figures and network counters read, and is read
//! in full again at the first sign of activity, when a task joins it, and after the interval.

use std::process::Command;
use std::time::Duration;

use collector_core::{Collector, Config, Snapshot};
use tests::{find, sleeper, NetnsPair, TestCgroup};

fn collector(id: &str, idle_interval: Duration) -> Collector {
    Collector::new(Config {
        include: vec![id.to_string()],
        per_cpu: true,
        idle_interval,
        ..Config::default()
    })
    .expect("cgroup hierarchy")
}

/// Sweeps until the container reads as idle (its processes may still be starting, and a full
/// read is a baseline only after 2 s of stillness).
fn until_idle(col: &mut Collector, id: &str) -> Snapshot {
    let mut seen = Vec::new();
    for _ in 0..80 {
        let s = col.sweep();
        let c = find(&s, id);
        if c.idle {
            return s;
        }
        seen.push((
            c.stats.cpu.usage_ns,
            c.stats.memory.usage_bytes,
            c.stats.pids.current,
            c.stats
                .load
                .map(|l| (l.running, l.uninterruptible, l.io_wait)),
            c.stats.memory.dirty_bytes,
            c.stats.memory.writeback_bytes,
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    seen.dedup();
    panic!("{id} never read as idle: {seen:?}");
}

#[test]
fn idle_container_keeps_its_figures_and_wakes_on_activity() {
    let mut cg = TestCgroup::new("ccol-idle");
    cg.spawn(&mut sleeper());
    let mut hold = Command::new(env!("CARGO_BIN_EXE_hold_memory"));
    hold.arg("8");
    cg.spawn(&mut hold);
    std::thread::sleep(Duration::from_millis(300));
    let mut col = collector(&cg.id, Duration::from_secs(60));
    let first = col.sweep();
    assert!(!find(&first, &cg.id).idle, "a first read is a full one");

    let quiet = until_idle(&mut col, &cg.id);
    assert!(quiet.errors.is_empty(), "{:?}", quiet.errors);
    let q = &find(&quiet, &cg.id).stats;
    // What was not read is the last full read's, not absent.
    assert!(q.memory.rss_bytes.is_some_and(|v| v >= 8 << 20), "{q:?}");
    assert!(q.memory.working_set_bytes.is_some());
    assert_eq!(q.pids.current, Some(2));
    assert!(q.spec.memory_limit_bytes.is_none() && q.spec.cpu_shares.is_some());
    let again = col.sweep();
    let a = find(&again, &cg.id);
    assert!(a.idle);
    // Usage (and the working set from it) is read every sweep; the rest is the full read's.
    let rest = |m: &collector_core::stats::MemoryStats| collector_core::stats::MemoryStats {
        usage_bytes: None,
        working_set_bytes: None,
        ..m.clone()
    };
    assert_eq!(rest(&a.stats.memory), rest(&q.memory));
    assert_eq!(a.stats.cpu, q.cpu);

    // CPU used: read in full at once, with the new figures.
    let mut burn = Command::new("sh");
    burn.args(["-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"]);
    let pid = cg.spawn(&mut burn);
    std::thread::sleep(Duration::from_millis(50));
    let busy = col.sweep();
    let b = find(&busy, &cg.id);
    assert!(!b.idle, "a container using CPU read as idle");
    assert!(b.stats.cpu.usage_ns > q.cpu.usage_ns);
    assert_eq!(b.stats.pids.current, Some(3), "the burner counted");
    cg.kill(pid);

    // Idle again once it stops: the burner's exit is read, then nothing moves.
    let settled = until_idle(&mut col, &cg.id);
    assert_eq!(find(&settled, &cg.id).stats.pids.current, Some(2));
}

/// What an idle sweep reports is the last full read's, not a fresh read: v1's max usage,
/// reset from outside (which moves none of CPU time, memory usage or tasks), keeps its old
/// value until the container is read in full again, where writes are not watched. Where
/// they are (inotify, the default), the write itself brings a full read.
#[test]
fn idle_sweeps_carry_the_last_full_read() {
    let mut cg = TestCgroup::new("ccol-idlecarry");
    let max_file = cg
        .dir_containing("memory")
        .join("memory.max_usage_in_bytes");
    assert!(
        max_file.exists(),
        "this test needs cgroup v1's memory controller ({} is missing)",
        max_file.display()
    );
    cg.spawn(&mut sleeper());
    // 16 MiB charged, then freed: the max usage stays above what is in use.
    let mut hold = Command::new(env!("CARGO_BIN_EXE_hold_memory"));
    hold.arg("16");
    let big = cg.spawn(&mut hold);
    let usage = |cg: &TestCgroup| -> u64 {
        let f = cg.dir_containing("memory").join("memory.usage_in_bytes");
        std::fs::read_to_string(f).unwrap().trim().parse().unwrap()
    };
    for _ in 0..100 {
        if usage(&cg) >= 16 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cg.kill(big);
    let mut col = Collector::new(Config {
        include: vec![cg.id.clone()],
        idle_interval: Duration::from_secs(60),
        watch: false,
        ..Config::default()
    })
    .expect("cgroup hierarchy");
    let mut watched = collector(&cg.id, Duration::from_secs(60));
    // Both idle in the same round, so neither has time to see the probe move before the write.
    let mut quiet = None;
    for _ in 0..80 {
        let (a, b) = (col.sweep(), watched.sweep());
        if find(&a, &cg.id).idle && find(&b, &cg.id).idle {
            quiet = Some(a);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let quiet = quiet.expect("both collectors read the container as idle");
    let before = find(&quiet, &cg.id).stats.memory.max_usage_bytes.unwrap();
    assert!(before >= 16 << 20, "max usage {before}");

    std::fs::write(&max_file, "0").unwrap();
    let s = col.sweep();
    let c = find(&s, &cg.id);
    assert!(c.idle, "resetting the max made the container active");
    assert_eq!(
        c.stats.memory.max_usage_bytes,
        Some(before),
        "re-read on an idle sweep"
    );
    // The watched collector saw the write: a full read.
    let s = watched.sweep();
    let c = find(&s, &cg.id);
    assert!(!c.idle, "a written container is read in full");
    let seen = c.stats.memory.max_usage_bytes.unwrap();
    assert!(seen < 16 << 20, "the reset, seen at the next sweep: {seen}");

    // A collector reading every file every sweep sees the reset.
    let fresh = collector(&cg.id, Duration::ZERO).sweep();
    let now = find(&fresh, &cg.id).stats.memory.max_usage_bytes.unwrap();
    assert!(now < 16 << 20, "the reset did not take: {now}");
}

/// A sleeping process moved in by another (as `docker exec` or a runtime would) costs the
/// container no CPU and no memory charge: the task counts still show it at once.
#[test]
fn a_task_moved_in_wakes_an_idle_container() {
    let mut cg = TestCgroup::new("ccol-idlemv");
    let mut other = TestCgroup::new("ccol-idlesrc");
    cg.spawn(&mut sleeper());
    let pid = other.spawn(&mut sleeper());
    std::thread::sleep(Duration::from_millis(200));
    let mut col = collector(&cg.id, Duration::from_secs(60));
    let quiet = until_idle(&mut col, &cg.id);
    assert_eq!(find(&quiet, &cg.id).stats.pids.current, Some(1));
    for d in cg.dirs() {
        std::fs::write(d.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", d.display()));
    }
    let s = col.sweep();
    let c = find(&s, &cg.id);
    assert!(
        !c.idle,
        "a task joined, but the container read as idle: {:?} then {:?}",
        find(&quiet, &cg.id).stats.load,
        c.stats.load
    );
    assert_eq!(c.stats.pids.current, Some(2));
    // `other` is dropped first and kills the moved process, so `cg` can be removed.
    drop(other);
}

/// Packets the kernel answers on a container's behalf (ICMP echo here) cost the container
/// nothing: it stays idle, and its network counters still move.
#[test]
fn network_counters_move_while_idle() {
    let pair = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-idlenet");
    cg.spawn(&mut NetnsPair::exec(&pair.a, "sleep", &["600"]));
    std::thread::sleep(Duration::from_millis(300));
    let mut col = collector(&cg.id, Duration::from_secs(60));
    let rx = |s: &Snapshot| {
        find(s, &cg.id)
            .stats
            .network
            .interfaces
            .iter()
            .find(|i| i.name == pair.a_if)
            .map(|i| i.rx_packets)
            .unwrap_or_else(|| panic!("no {} in {:?}", pair.a_if, find(s, &cg.id).stats.network))
    };
    let before = until_idle(&mut col, &cg.id);
    let ping = NetnsPair::exec(
        &pair.b,
        "ping",
        &["-c", "5", "-i", "0.2", "-W", "2", pair.a_addr],
    )
    .output()
    .expect("ping");
    assert!(ping.status.success(), "ping: {ping:?}");
    let after = col.sweep();
    assert!(
        find(&after, &cg.id).idle,
        "kernel-answered pings made the container active"
    );
    assert!(
        rx(&after) >= rx(&before) + 5,
        "rx packets {} -> {}",
        rx(&before),
        rx(&after)
    );
}

#[test]
fn the_idle_interval_bounds_how_long_figures_are_kept() {
    let mut cg = TestCgroup::new("ccol-idleint");
    cg.spawn(&mut sleeper());
    std::thread::sleep(Duration::from_millis(200));
    let mut col = collector(&cg.id, Duration::from_millis(500));
    until_idle(&mut col, &cg.id);
    std::thread::sleep(Duration::from_millis(600));
    let s = col.sweep();
    assert!(!find(&s, &cg.id).idle, "read as idle past the interval");
    assert!(
        find(&col.sweep(), &cg.id).idle,
        "not idle again after the full read"
    );

    // Zero: every sweep reads every file.
    let mut col = collector(&cg.id, Duration::ZERO);
    for _ in 0..5 {
        assert!(!find(&col.sweep(), &cg.id).idle);
    }
}

/// A parent's figures include its children's: it is never read as idle, even when it has no
/// task of its own.
#[test]
fn parents_are_never_idle() {
    let mut cg = TestCgroup::new("ccol-idlepar");
    let child_dirs: Vec<_> = cg.dirs().iter().map(|d| d.join("child")).collect();
    for d in &child_dirs {
        std::fs::create_dir(d).unwrap();
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = std::fs::read_to_string(d.parent().unwrap().join(f)) {
                let _ = std::fs::write(d.join(f), v.trim());
            }
        }
    }
    let child_id = format!("{}/child", cg.id);
    let mut col = collector(&cg.id, Duration::from_secs(60));
    until_idle(&mut col, &child_id);
    for _ in 0..5 {
        let s = col.sweep();
        assert!(
            find(&s, &child_id).idle,
            "the empty child stopped being idle"
        );
        assert!(!find(&s, &cg.id).idle, "the parent read as idle");
    }
    // Without its child, the same cgroup is a leaf and reads as idle (inotify sees the rmdir).
    for d in child_dirs.iter().rev() {
        std::fs::remove_dir(d).unwrap();
    }
    until_idle(&mut col, &cg.id);
    drop(col);
    cg.kill_all();
}
