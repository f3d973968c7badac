//! The collector on this machine's real cgroups: the test makes a cgroup in every v1
//! controller and in the cgroup2 hierarchy, runs known workloads in it, and checks what the
//! collector reads. Also checks the readings against cgroups-rs's parse of the same files.

use std::process::Command;
use std::time::Duration;

use collector_core::{Collector, Config, LoadSource, NetworkStatus, Setup, Snapshot};
use tests::{find, NetnsPair, TestCgroup};

fn collector_for(id: &str) -> Collector {
    let cfg = Config {
        include: vec![id.to_string()],
        per_cpu: true,
        ..Config::default()
    };
    Collector::new(cfg).expect("cgroup hierarchy")
}

fn burner() -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "while :; do :; done"]);
    c
}

#[test]
fn cpu_memory_pids_pressure_and_load_on_real_cgroups() {
    let mut cg = TestCgroup::new("ccol-live");
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(512u64 << 20).to_string(),
    );
    cg.set("cpu", "cpu.cfs_quota_us", "30000");
    cg.set("cpu", "cpu.cfs_period_us", "100000");
    cg.set("pids", "pids.max", "50");

    // 64 MiB held by one child; three CPU burners on two cores, so tasks wait (PSI moves)
    // and the 0.3 CPU quota throttles them.
    let mut hold = Command::new(env!("CARGO_BIN_EXE_hold_memory"));
    hold.arg("64").stdout(std::process::Stdio::piped());
    let holder = cg.spawn(&mut hold);
    for _ in 0..3 {
        cg.spawn(&mut burner());
    }
    let mut col = collector_for(&cg.id);
    assert_ne!(
        col.hierarchy().setup,
        Setup::Unified,
        "this test is for v1/hybrid hosts"
    );
    // Let the holder touch its pages.
    std::thread::sleep(Duration::from_millis(700));
    let first = col.sweep();
    std::thread::sleep(Duration::from_millis(1500));
    let second = col.sweep();
    let (a, b) = (&find(&first, &cg.id).stats, &find(&second, &cg.id).stats);
    assert!(second.errors.is_empty(), "{:?}", second.errors);

    let used = b.cpu.usage_ns.unwrap() - a.cpu.usage_ns.unwrap();
    // 1.5 s at up to 0.3 CPUs: at most 0.45 s, and surely more than 0.1 s.
    assert!(
        used > 100_000_000 && used < 600_000_000,
        "cpu used {used} ns"
    );
    assert!(b.cpu.user_ns.unwrap() > a.cpu.user_ns.unwrap());
    assert_eq!(b.cpu.per_cpu_ns.len(), nix_cpus());
    assert!(b.cpu.nr_periods.unwrap() > a.cpu.nr_periods.unwrap());
    assert!(
        b.cpu.nr_throttled.unwrap() > 0,
        "quota 0.3 CPUs with 3 burners must throttle: {:?}",
        b.cpu
    );
    assert!(b.cpu.throttled_ns.unwrap() > 0);
    assert_eq!(b.spec.cpu_quota_us, Some(30_000));
    assert_eq!(b.spec.cpu_period_us, Some(100_000));

    let mem = b.memory.usage_bytes.unwrap();
    assert!(
        mem >= 64 << 20,
        "memory usage {mem} < 64 MiB held by pid {holder}"
    );
    assert!(b.memory.rss_bytes.unwrap() >= 60 << 20);
    assert!(b.memory.working_set_bytes.unwrap() >= 64 << 20);
    assert_eq!(b.spec.memory_limit_bytes, Some(512 << 20));

    assert_eq!(b.pids.current, Some(4), "{:?}", b.pids);
    assert_eq!(b.pids.limit, Some(50));

    // The unified twin's PSI: waiting runnable tasks accumulate "some" stall time.
    let (pa, pb) = (a.pressure.cpu.unwrap(), b.pressure.cpu.unwrap());
    assert!(
        pb.some.total_us > pa.some.total_us,
        "cpu pressure did not move: {pa:?} -> {pb:?}"
    );

    let load = b.load.expect("load read");
    assert!(load.running >= 1, "{load:?}");
    // Four tasks in all; the holder's nanosleep is not counted by netlink on Linux >= 6.1
    // (see collector-core/src/load/mod.rs), so only an upper bound holds for sleeping.
    assert!(
        load.running + load.sleeping + load.uninterruptible <= 4,
        "{load:?}"
    );
    if load.source == LoadSource::Procfs {
        assert!(load.sleeping >= 1, "the memory holder sleeps: {load:?}");
    }
    assert_ne!(load.source, LoadSource::Truncated);
    assert!(load.load_average_10s > 0.0);

    // Processes in the host's network namespace: not credited with the host's traffic.
    assert_eq!(b.network.status, NetworkStatus::HostNamespace);
    assert!(b.network.interfaces.is_empty());
}

fn nix_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| {
            let last = s.trim().rsplit(['-', ',']).next()?.parse::<usize>().ok()?;
            Some(last + 1)
        })
        .unwrap_or(1)
}

/// The collector keeps a handle on one process of a container for its network figures; when
/// that process exits, another of the container's processes takes over at once.
#[test]
fn network_follows_the_container_when_its_process_exits() {
    let pair = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-netexit");
    let first = cg.spawn(&mut NetnsPair::exec(&pair.a, "sleep", &["600"]));
    let mut col = collector_for(&cg.id);
    std::thread::sleep(Duration::from_millis(300));
    let id = cg.id.clone();
    let has_link = |s: &Snapshot| {
        let n = &find(s, &id).stats.network;
        n.status == NetworkStatus::Own && n.interfaces.iter().any(|i| i.name == pair.a_if)
    };
    let s = col.sweep();
    assert!(has_link(&s), "{:?}", find(&s, &cg.id).stats.network);
    // A second process in the same namespace, then the first (the one followed) goes.
    cg.spawn(&mut NetnsPair::exec(&pair.a, "sleep", &["600"]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(has_link(&col.sweep()));
    cg.kill(first);
    let s = col.sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(has_link(&s), "{:?}", find(&s, &cg.id).stats.network);
    // None left: no figures, no error, and the cgroup is still there.
    cg.kill_all();
    std::thread::sleep(Duration::from_millis(100));
    let s = col.sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let n = &find(&s, &cg.id).stats.network;
    assert_eq!(n.status, NetworkStatus::NoProcess, "{n:?}");
    assert!(n.interfaces.is_empty());
}

#[test]
fn network_traffic_over_a_veth_between_test_namespaces() {
    let pair = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-net");
    cg.spawn(&mut NetnsPair::exec(&pair.a, "sleep", &["600"]));
    let mut col = collector_for(&cg.id);
    std::thread::sleep(Duration::from_millis(300));
    let before = col.sweep();
    let iface = |s: &Snapshot| {
        let c = find(s, &cg.id);
        assert_eq!(
            c.stats.network.status,
            NetworkStatus::Own,
            "{:?}",
            c.stats.network
        );
        c.stats
            .network
            .interfaces
            .iter()
            .find(|i| i.name == pair.a_if)
            .cloned()
            .unwrap_or_else(|| panic!("no {} in {:?}", pair.a_if, c.stats.network))
    };
    let i0 = iface(&before);
    // 20 pings of 1000 bytes from a to b: each way at least 20 * 1000 bytes.
    let out = NetnsPair::exec(
        &pair.a,
        "ping",
        &[
            "-c",
            "20",
            "-i",
            "0.01",
            "-s",
            "1000",
            "-W",
            "1",
            pair.b_addr,
        ],
    )
    .output()
    .expect("ping (iputils-ping) not installed; run scripts/test.sh");
    assert!(
        out.status.success(),
        "ping failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after = col.sweep();
    let i1 = iface(&after);
    assert!(i1.tx_bytes - i0.tx_bytes >= 20_000, "{i0:?} -> {i1:?}");
    assert!(i1.rx_bytes - i0.rx_bytes >= 20_000, "{i0:?} -> {i1:?}");
    assert!(i1.tx_packets - i0.tx_packets >= 20);
    assert!(i1.rx_packets - i0.rx_packets >= 20);
    // The namespace's loopback is left out by default, as cAdvisor does.
    let names: Vec<String> = find(&after, &cg.id)
        .stats
        .network
        .interfaces
        .iter()
        .map(|i| i.name.clone())
        .collect();
    assert!(!names.iter().any(|n| n == "lo"), "{names:?}");
}

#[test]
fn new_and_removed_cgroups_are_found_through_inotify() {
    let outer = TestCgroup::new("ccol-watch");
    let cfg = Config {
        include: vec![outer.id.clone()],
        // Only inotify can find the new cgroup within this test's time.
        rescan_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let mut col = Collector::new(cfg).unwrap();
    let s = col.sweep();
    assert_eq!(s.containers.len(), 1);
    let inner = outer.dir_containing("memory").join("inner");
    std::fs::create_dir(&inner).unwrap();
    let s = col.sweep();
    let inner_id = format!("{}/inner", outer.id);
    let got = s.get(&inner_id).is_some();
    std::fs::remove_dir(&inner).unwrap();
    assert!(
        got,
        "new cgroup not seen: {:?}",
        s.containers.iter().map(|c| &c.id).collect::<Vec<_>>()
    );
    let s = col.sweep();
    assert!(s.get(&inner_id).is_none());
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

/// cgroups-rs parses the same files independently; on the same live cgroup the figures agree
/// (counters that move are bracketed by two of our reads).
#[test]
fn agrees_with_cgroups_rs() {
    use cgroups_rs::fs::{
        cpu::CpuController, cpuacct::CpuAcctController, memory::MemController, pid::PidController,
    };
    let mut cg = TestCgroup::new("ccol-xcheck");
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(300u64 << 20).to_string(),
    );
    cg.set("cpu", "cpu.shares", "512");
    cg.set("cpu", "cpu.cfs_quota_us", "20000");
    let mut hold = Command::new(env!("CARGO_BIN_EXE_hold_memory"));
    hold.arg("16");
    cg.spawn(&mut hold);
    cg.spawn(&mut burner());
    std::thread::sleep(Duration::from_millis(500));

    let mut col = collector_for(&cg.id);
    let ours_before = col.sweep();
    let theirs = cgroups_rs::fs::Cgroup::load(cgroups_rs::fs::hierarchies::auto(), &cg.id[1..]);
    let acct: &CpuAcctController = theirs.controller_of().expect("cpuacct");
    let their_usage = acct.cpuacct().usage;
    let mem: &MemController = theirs.controller_of().expect("memory");
    let m = mem.memory_stat();
    let cpu: &CpuController = theirs.controller_of().expect("cpu");
    let pids: &PidController = theirs.controller_of().expect("pids");
    let ours_after = col.sweep();
    let (a, b) = (
        &find(&ours_before, &cg.id).stats,
        &find(&ours_after, &cg.id).stats,
    );

    // On a hybrid host ours comes from the unified twin's cpu.stat, in whole microseconds.
    // The twin's figure, flushed from per-CPU rstat counters, has been seen trailing
    // cpuacct.usage read before it by 37 and 61 us on this kernel: a millisecond of slack
    // still tells a wrong source (another cgroup's, or none) from the right one.
    let (ua, ub) = (a.cpu.usage_ns.unwrap(), b.cpu.usage_ns.unwrap());
    assert!(
        ua <= their_usage && their_usage < ub + 1_000_000,
        "{ua} <= {their_usage} <= {ub}"
    );
    assert_eq!(b.spec.memory_limit_bytes, Some(m.limit_in_bytes as u64));
    assert_eq!(b.spec.cpu_shares, Some(cpu.shares().unwrap()));
    assert_eq!(b.spec.cpu_quota_us, Some(cpu.cfs_quota().unwrap() as u64));
    assert_eq!(b.pids.current, Some(pids.get_pid_current().unwrap()));
    // The holder sleeps and the burner allocates nothing: memory is steady.
    let within = |x: u64, y: u64| x.abs_diff(y) <= 1 << 20;
    assert!(
        within(b.memory.usage_bytes.unwrap(), m.usage_in_bytes),
        "{:?} vs {}",
        b.memory.usage_bytes,
        m.usage_in_bytes
    );
    assert!(within(b.memory.rss_bytes.unwrap(), m.stat.total_rss));
    assert!(within(b.memory.cache_bytes.unwrap(), m.stat.total_cache));
    assert!(within(
        b.memory.inactive_file_bytes.unwrap(),
        m.stat.total_inactive_file
    ));
}

/// Past the watch limit nothing is lost: new cgroups under unwatched directories are found by
/// the periodic rescan, and the collector says it is saturated.
#[test]
fn watch_limit_falls_back_to_rescans() {
    let outer = TestCgroup::new("ccol-wlimit");
    let cfg = Config {
        include: vec![outer.id.clone()],
        watch_limit: 1,
        // Long enough that a loaded machine's slow first sweep does not reach it before the
        // second.
        rescan_interval: Duration::from_millis(2000),
        ..Config::default()
    };
    let mut col = Collector::new(cfg).unwrap();
    // `a` in every hierarchy, as a runtime makes it (one found in fewer than its parent would
    // have the next sweep walk again, on purpose); `b` below it in memory only.
    let all_a: Vec<_> = outer.dirs().iter().map(|d| d.join("a")).collect();
    for d in &all_a {
        std::fs::create_dir(d).unwrap();
    }
    let b = outer.dir_containing("memory").join("a").join("b");
    let cleanup = || {
        let _ = std::fs::remove_dir(&b);
        for d in &all_a {
            let _ = std::fs::remove_dir(d);
        }
    };
    // The first walk watches the outer directory and then hits the limit at `a`.
    col.sweep();
    assert!(col.watch_saturated(), "a limit of 1 watch must saturate");
    // `a` is unwatched: a child made there is not seen until the rescan is due.
    std::fs::create_dir(&b).unwrap();
    let b_id = format!("{}/a/b", outer.id);
    let soon = col.sweep();
    let seen_soon = soon.get(&b_id).is_some();
    std::thread::sleep(Duration::from_millis(2100));
    let later = col.sweep();
    let seen_later = later.get(&b_id).is_some();
    cleanup();
    assert!(
        !seen_soon,
        "found without a watch or a rescan: the limit did not apply"
    );
    assert!(seen_later, "the periodic rescan did not find {b_id}");
}

/// Without inotify (so writes are not seen; spec_updates.rs has them seen), limits are re-read
/// on the spec interval, not every sweep: a change shows once the interval has passed, and the
/// cached value is reported in between (with no extra file reads).
#[test]
fn limits_are_reread_on_the_spec_interval() {
    let cg = TestCgroup::new("ccol-spec");
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(256u64 << 20).to_string(),
    );
    cg.set("pids", "pids.max", "40");
    let mut col = Collector::new(Config {
        include: vec![cg.id.clone()],
        spec_interval: Duration::from_millis(800),
        watch: false,
        network: false,
        load: false,
        ..Config::default()
    })
    .expect("cgroup hierarchy");
    let first = col.sweep();
    let a = &find(&first, &cg.id).stats;
    assert_eq!(a.spec.memory_limit_bytes, Some(256 << 20));
    assert_eq!(a.pids.limit, Some(40));

    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(128u64 << 20).to_string(),
    );
    cg.set("pids", "pids.max", "max");
    let cached = col.sweep();
    let b = &find(&cached, &cg.id).stats;
    assert_eq!(
        b.spec.memory_limit_bytes,
        Some(256 << 20),
        "cached until due"
    );
    assert_eq!(b.pids.limit, Some(40));
    assert_eq!(b.spec, a.spec);

    std::thread::sleep(Duration::from_millis(900));
    let fresh = col.sweep();
    let c = &find(&fresh, &cg.id).stats;
    assert_eq!(c.spec.memory_limit_bytes, Some(128 << 20));
    assert_eq!(c.pids.limit, None, "pids.max back to max: unlimited");
    assert!(fresh.errors.is_empty(), "{:?}", fresh.errors);
}

/// A runtime makes a container's cgroup in one hierarchy after another, and inotify watches
/// one: a cgroup found in fewer hierarchies than its parent is walked for again at the next
/// sweep, not left without its CPU figures until the next periodic rescan (minutes away).
#[test]
fn a_cgroup_caught_half_made_is_completed_at_the_next_sweep() {
    let outer = TestCgroup::new("ccol-half");
    let mut col = Collector::new(Config {
        include: vec![outer.id.clone()],
        ..Config::default()
    })
    .unwrap();
    col.sweep();
    let inner_id = format!("{}/inner", outer.id);
    let in_memory = outer.dir_containing("memory").join("inner");
    std::fs::create_dir(&in_memory).unwrap();
    let s = col.sweep();
    let half = find(&s, &inner_id);
    assert!(half.stats.cpu.usage_ns.is_none(), "{:?}", half.stats.cpu);
    let rest: Vec<_> = ["cpuacct", "unified"]
        .iter()
        .map(|c| outer.dir_containing(c).join("inner"))
        .collect();
    for d in &rest {
        std::fs::create_dir(d).unwrap();
    }
    let s = col.sweep();
    let got = find(&s, &inner_id).stats.cpu.usage_ns;
    for d in rest.iter().chain([&in_memory]) {
        let _ = std::fs::remove_dir(d);
    }
    assert!(
        got.is_some(),
        "the cgroup's other hierarchies were not picked up"
    );
}
