//! Processes that exit between being listed and being read, and pids used again: two cgroups
//! each run loops that exec a short-lived program thousands of times (`/bin/true` in one,
//! `/bin/false` in the other; this host's `pid_max` is small enough that pids wrap during the
//! test), while the collector sweeps in a loop (processes read at every full read, the
//! security signals on) and lists each cgroup's processes as the JSON API does. No sweep
//! reports an error but vanished ones, and no process of one cgroup is ever listed in the
//! other's. `CHURN_SECS` (8 by default) sets how long.

use std::process::Command;
use std::time::{Duration, Instant};

use collector_core::error::{is_vanished, Error};
use collector_core::{list_processes, Collector, Config};
use tests::TestCgroup;

fn churn_secs() -> u64 {
    std::env::var("CHURN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// The last pid the kernel handed out (`/proc/loadavg`'s last field).
fn last_pid() -> u64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

fn vanished(e: &Error) -> bool {
    matches!(e, Error::Read { source, .. } if is_vanished(source))
}

/// A loop execing `program` as fast as it can.
fn looper(program: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("while :; do {program}; done"));
    c
}

#[test]
fn churning_processes_never_err_and_never_land_in_the_wrong_cgroup() {
    let mut a = TestCgroup::new("ccol-churn-a");
    let mut b = TestCgroup::new("ccol-churn-b");
    for _ in 0..2 {
        a.spawn(&mut looper("/bin/true"));
        b.spawn(&mut looper("/bin/false"));
    }
    let mut col = Collector::new(Config {
        include: vec![a.id.clone(), b.id.clone()],
        process_interval: Duration::ZERO,
        ..Config::default()
    })
    .expect("a cgroup hierarchy");
    let roots = col.config().roots.clone();
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let (first_pid, started) = (last_pid(), Instant::now());
    let (mut sweeps, mut listings, mut listed) = (0u64, 0u64, 0u64);
    let mut pids_seen = 0u64;
    let mut prev_pid = first_pid;
    let mut vanished_errors = 0usize;
    while started.elapsed() < Duration::from_secs(churn_secs()) {
        let snap = col.sweep();
        sweeps += 1;
        for e in &snap.errors {
            assert!(vanished(e), "sweep {sweeps}: {e}");
            vanished_errors += 1;
        }
        for c in [&a.id, &b.id] {
            assert!(
                snap.containers.iter().any(|x| &x.id == c),
                "{c} missing from sweep {sweeps}"
            );
        }
        for (cg, own, other) in [(&a, "true", "false"), (&b, "false", "true")] {
            let list =
                match list_processes(&roots, col.hierarchy(), &cg.id, std::path::Path::new("/")) {
                    Ok(l) => l,
                    Err(e) => panic!("listing {}: {e}", cg.id),
                };
            listings += 1;
            for p in &list.processes {
                listed += 1;
                assert!(
                    p.comm != other && !p.exe.ends_with(&format!("/{other}")),
                    "{}'s listing holds {p:?}, a process of the other cgroup",
                    cg.id
                );
                assert!(
                    p.comm == own || p.comm == "sh",
                    "{}'s listing holds {p:?}",
                    cg.id
                );
            }
        }
        let now = last_pid();
        pids_seen += if now >= prev_pid {
            now - prev_pid
        } else {
            now + pid_max - prev_pid
        };
        prev_pid = now;
    }
    println!(
        "churn: {pids_seen} pids handed out in {:?} (pid_max {pid_max}: wrapped {} times), \
         {sweeps} sweeps, {listings} listings of {listed} processes, \
         0 errors but {vanished_errors} vanished, 0 misattributed",
        started.elapsed(),
        pids_seen / pid_max.max(1)
    );
    assert!(pids_seen > 5_000, "only {pids_seen} processes ran");
    a.kill_all();
    b.kill_all();
}
