//! Many cgroups nested deep: `NESTED_CHAINS` chains (10 here; 100 by
//! `benches/soak/nested-cgroups.sh`, 5,000 cgroups) of 50 levels, made in every hierarchy
//! as a runtime makes them. The exporter finds every one, sweeps them without an error, and
//! once they are removed, deepest first, forgets every one. Prints the sweep time and the
//! exporter's RSS. `NESTED_EXPORTER` runs another build of the exporter (a release one).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tests::{samples, Exporter, TestCgroup, NO_RUNTIMES};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");
const DEPTH: usize = 50;

fn chains() -> usize {
    std::env::var("NESTED_CHAINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// The nested directories under a test cgroup, removed deepest first when dropped.
struct Tree {
    /// Every directory made, in the order made (parents first).
    made: Vec<PathBuf>,
}

impl Tree {
    fn make(top: &TestCgroup, chains: usize) -> Tree {
        let mut made = Vec::new();
        for c in 0..chains {
            for root in top.dirs() {
                let mut dir = root.join(format!("chain{c:03}"));
                for level in 0..DEPTH {
                    if level > 0 {
                        dir = dir.join(format!("l{level:02}"));
                    }
                    std::fs::create_dir(&dir)
                        .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                    made.push(dir.clone());
                }
            }
        }
        Tree { made }
    }

    fn remove(&mut self) {
        for d in self.made.drain(..).rev() {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.remove();
    }
}

fn figure(e: &Exporter, name: &str) -> f64 {
    samples(&e.get("/metrics").text(), name)
        .first()
        .map_or(f64::NAN, |s| s.1)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the exporter's last sweep saw `want` containers.
fn wait_for(e: &Exporter, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let n = figure(e, "collector_containers");
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} containers, want {want}; log:\n{}",
            e.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn deep_trees_are_found_swept_and_forgotten() {
    let top = TestCgroup::new("ccol-nested");
    let chains = chains();
    let t = Instant::now();
    let mut tree = Tree::make(&top, chains);
    let made_in = t.elapsed();
    let want = (chains * DEPTH) as f64 + 1.0; // and the top itself
    let mut args = vec!["--cgroups.include", top.id.as_str()];
    args.extend(NO_RUNTIMES);
    args.extend(["--housekeeping.interval", "1s"]);
    let bin = std::env::var("NESTED_EXPORTER").unwrap_or_else(|_| BIN.to_string());
    let exp = Exporter::start(&bin, &args);
    wait_for(&exp, want, Duration::from_secs(60));
    // A few sweeps of the whole tree, then the figures.
    std::thread::sleep(Duration::from_secs(3));
    let body = exp.get("/metrics").text();
    let sweep = samples(&body, "collector_sweep_duration_seconds")[0].1;
    let errors = samples(&body, "collector_sweep_errors_total")
        .first()
        .map_or(0.0, |s| s.1);
    let rss = rss_kib(exp.child.id());
    let held = samples(&body, "collector_held_descriptors")[0].1;
    let watches = samples(&body, "collector_inotify_watches")[0].1;
    // Every leaf is there by its full path.
    let deepest: Vec<String> = (0..chains)
        .map(|c| {
            let mut p = format!("{}/chain{c:03}", top.id);
            for level in 1..DEPTH {
                p.push_str(&format!("/l{level:02}"));
            }
            p
        })
        .collect();
    let list: serde_json::Value =
        serde_json::from_slice(&exp.get("/api/v1/containers").body).unwrap();
    let ids: std::collections::HashSet<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    for d in &deepest {
        assert!(ids.contains(d.as_str()), "{d} not found");
    }
    assert_eq!(
        errors,
        0.0,
        "sweep errors; log:\n{}",
        exp.log.lock().unwrap()
    );
    // Removal: every one forgotten, still without an error.
    let t = Instant::now();
    tree.remove();
    let removed_in = t.elapsed();
    wait_for(&exp, 1.0, Duration::from_secs(60));
    let errors = figure(&exp, "collector_sweep_errors_total");
    assert_eq!(
        errors,
        0.0,
        "errors after removal; log:\n{}",
        exp.log.lock().unwrap()
    );
    // Clean: the descriptors and watches held for the tree are let go (the top's stay).
    let body = exp.get("/metrics").text();
    let held_after = samples(&body, "collector_held_descriptors")[0].1;
    let watches_after = samples(&body, "collector_inotify_watches")[0].1;
    assert!(
        held > (chains * DEPTH) as f64,
        "only {held} descriptors held for the tree"
    );
    assert!(held_after <= 20.0, "{held_after} descriptors still held");
    assert!(
        watches_after < 200.0,
        "{watches_after} inotify watches still held"
    );
    let log = exp.log.lock().unwrap().clone();
    assert!(!log.contains("ERROR"), "{log}");
    println!(
        "nested: {} cgroups ({chains} chains x {DEPTH} deep, {} hierarchies) made in {made_in:?}, \
         removed in {removed_in:?}; last sweep {:.1} ms; exporter RSS {:.1} MiB; \
         descriptors held {held} then {held_after}, inotify watches {watches} then {watches_after}; \
         0 errors",
        chains * DEPTH,
        top.dirs().len(),
        sweep * 1e3,
        rss as f64 / 1024.0
    );
}
