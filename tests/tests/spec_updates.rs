//! Spec changes on real cgroups (collector-core/src/specwatch.rs): a limit written to a
//! container's control files is reported at the next sweep, without waiting for the spec
//! interval, and an idle container is no exception.

use std::time::Duration;

use collector_core::{Collector, Config};
use tests::{find, sleeper, TestCgroup};

/// Both spec intervals an hour: only a noticed write can bring a new spec within the test.
fn collector(id: &str, watch: bool) -> Collector {
    Collector::new(config(id, watch)).expect("cgroup hierarchy")
}

fn config(id: &str, watch: bool) -> Config {
    Config {
        include: vec![id.to_string()],
        watch,
        spec_interval: Duration::from_secs(3600),
        watched_spec_interval: Duration::from_secs(3600),
        ..Config::default()
    }
}

const MIB: u64 = 1 << 20;

/// Sweeps until the container reads as idle (a full read is a baseline only after 2 s of
/// stillness).
fn until_idle(col: &mut Collector, id: &str) {
    for _ in 0..80 {
        if find(&col.sweep(), id).idle {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{id} never read as idle");
}

#[test]
fn written_limits_are_read_at_the_next_sweep() {
    let mut cg = TestCgroup::new("ccol-spec");
    cg.set("memory", "memory.limit_in_bytes", &(256 * MIB).to_string());
    cg.set("pids", "pids.max", "50");
    cg.spawn(&mut sleeper());
    let mut col = collector(&cg.id, true);
    let mut blind = collector(&cg.id, false);
    for c in [&mut col, &mut blind] {
        let s = c.sweep();
        let spec = &find(&s, &cg.id).stats.spec;
        assert_eq!(spec.memory_limit_bytes, Some(256 * MIB));
        assert_eq!(spec.pids_limit, Some(50));
        assert_eq!(spec.cpu_quota_us, None);
    }
    // Idle: nothing but the probe is read, and the spec interval is an hour away.
    until_idle(&mut col, &cg.id);

    // Three hierarchies written, as `docker update --memory --pids-limit --cpus` does.
    cg.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
    cg.set("pids", "pids.max", "80");
    cg.set("cpu", "cpu.cfs_quota_us", "50000");
    let s = col.sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(
        !find(&s, &cg.id).idle,
        "a written container is read in full"
    );
    let spec = &find(&s, &cg.id).stats.spec;
    assert_eq!(spec.memory_limit_bytes, Some(512 * MIB), "memory limit");
    assert_eq!(spec.pids_limit, Some(80), "pids limit");
    assert_eq!(find(&s, &cg.id).stats.pids.limit, Some(80));
    assert_eq!(spec.cpu_quota_us, Some(50_000), "CPU quota");

    // Without the watch the old spec stands until the interval: what the watch brought is
    // not something every sweep reads anyway.
    let s = blind.sweep();
    let old = &find(&s, &cg.id).stats.spec;
    assert_eq!(
        old.memory_limit_bytes,
        Some(256 * MIB),
        "the unwatched collector's"
    );
    assert_eq!(old.pids_limit, Some(50));

    // Read once per write, not again while nothing is written.
    cg.set("memory", "memory.limit_in_bytes", &(384 * MIB).to_string());
    let s = col.sweep();
    assert_eq!(
        find(&s, &cg.id).stats.spec.memory_limit_bytes,
        Some(384 * MIB)
    );
    // A value other than the one it has (the parent's, all CPUs).
    let one = match find(&s, &cg.id).stats.spec.cpuset_cpus.as_deref() {
        Some("0") => "1",
        _ => "0",
    };
    cg.set("cpuset", "cpuset.cpus", one);
    let s = col.sweep();
    assert_eq!(
        find(&s, &cg.id).stats.spec.cpuset_cpus.as_deref(),
        Some(one)
    );
}

/// A cgroup removed and made again under the same name has new directories: the watches
/// follow them, so a later write is still noticed. No directory descriptor is held (a budget
/// of 0), so nothing but the rescan can tell that the directories are new.
#[test]
fn writes_are_noticed_after_the_cgroup_is_made_again() {
    let mut cg = TestCgroup::new("ccol-spec-re");
    cg.set("pids", "pids.max", "10");
    cg.spawn(&mut sleeper());
    let mut col = Collector::new(Config {
        descriptor_budget: Some(0),
        ..config(&cg.id, true)
    })
    .expect("cgroup hierarchy");
    assert_eq!(find(&col.sweep(), &cg.id).stats.spec.pids_limit, Some(10));

    cg.recreate();
    cg.set("pids", "pids.max", "20");
    cg.spawn(&mut sleeper());
    // The made-again directories are found (inotify on the removal and creation) and read.
    let mut limit = None;
    for _ in 0..20 {
        limit = col
            .sweep()
            .get(&cg.id)
            .and_then(|c| c.stats.spec.pids_limit);
        if limit == Some(20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(limit, Some(20), "read from the new directories");
    col.sweep();

    cg.set("pids", "pids.max", "30");
    let s = col.sweep();
    assert_eq!(
        find(&s, &cg.id).stats.spec.pids_limit,
        Some(30),
        "noticed on the new directory"
    );
}

/// Inodes this process watches with inotify mask `mask` (fdinfo leaves out `IN_ONLYDIR`):
/// the spec watch's is `IN_MODIFY`, discovery's `IN_CREATE | IN_DELETE | IN_MOVED_*`.
fn watched_inodes(mask: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
    {
        let is_inotify =
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("inotify"));
        if !is_inotify {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            e.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        for line in info.lines().filter(|l| l.starts_with("inotify wd:")) {
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(k))
                    .and_then(|v| u64::from_str_radix(v, 16).ok())
            };
            if field("mask:") == Some(mask) {
                out.extend(field("ino:"));
            }
        }
    }
    out
}

/// cgroupfs sends no `IN_IGNORED` when a directory goes: the watches of a container that is
/// gone, the spec watch's and discovery's, are let go by the collector, not left to pin the
/// removed directories.
#[test]
fn watches_are_let_go_when_the_container_goes() {
    use std::os::unix::fs::MetadataExt;
    let mut cg = TestCgroup::new("ccol-spec-gone");
    cg.spawn(&mut sleeper());
    let inos: Vec<u64> = ["cpu", "cpuset", "memory", "pids"]
        .iter()
        .map(|p| {
            std::fs::metadata(cg.dir_containing(&format!("/{p}/")))
                .expect("stat")
                .ino()
        })
        .collect();
    let mut col = collector(&cg.id, true);
    find(&col.sweep(), &cg.id);
    const SPEC: u64 = 0x2;
    const DISCOVERY: u64 = 0x3c0;
    let watched = |mask: u64, inos: &[u64]| {
        let w = watched_inodes(mask);
        inos.iter().filter(|i| w.contains(i)).count()
    };
    assert_eq!(
        watched(SPEC, &inos),
        4,
        "cpu, cpuset, memory and pids watched"
    );
    assert_eq!(
        watched(DISCOVERY, &inos),
        1,
        "discovery watches the memory hierarchy"
    );

    let id = cg.id.clone();
    drop(cg);
    for _ in 0..20 {
        if col.sweep().get(&id).is_none() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        watched(SPEC, &inos),
        0,
        "the gone container's watches let go"
    );
    assert_eq!(watched(DISCOVERY, &inos), 0, "discovery's too");
}
