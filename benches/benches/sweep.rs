//! One full sweep over N real cgroups, three ways:
//!
//! - `sweep/collector-core/N`: `Collector::sweep_into` in steady state (everything the
//!   collector reads, network and load included, every file on every sweep);
//!   `sweep/collector-core-idle/N` with the default idle reads (the set's cgroups, asleep,
//!   read as idle); `sweep/collector-core-files-only/N` with
//!   `network: false, load: false`; `sweep/collector-core-rescan/N` with a full discovery walk
//!   before every sweep.
//! - `sweep/cgroups-rs/N`: for each cgroup `Cgroup::load(hierarchies::auto(), path)`, then
//!   `cpuacct()`, `cpu()`, `memory_stat()`, `get_pid_current()`, `get_pid_max()`, `blkio()`.
//!   `sweep/cgroups-rs-hier-reused/N` builds the hierarchy (a mountinfo parse) once and clones it.
//! - `floor/*/N`: the kernel's floor for `cpuacct.usage` + `memory.stat` of each cgroup: fds
//!   held open and `pread` at offset 0 into a reused buffer, `open`+`read`+`close` (by full
//!   path, and `openat` on the cgroup directory held open), and std's
//!   `File::open` + `read_to_string` into a reused `String` (what `collector_core::read::Reader`
//!   does per file).
//!
//! Each set is the parent `/ccol-bench-<pid>-<N>` plus N children, so every variant reads the
//! same N+1 cgroups; criterion's throughput figure is per cgroup. Needs root; skips otherwise.
//! Sizes and process density: `CCOL_BENCH_SIZES=100,1000`, `CCOL_BENCH_PROC_EVERY=10`.

use std::hint::black_box;
use std::time::Duration;

use benches::{cgroups_rs_read, relative, steady_collector, CgroupSet, Floor};
use cgroups_rs::fs::hierarchies::{self, V1};
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::Cgroup;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};

fn all(c: &mut Criterion) {
    let h = match benches::preflight() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("sweep bench skipped: {why}");
            return;
        }
    };
    benches::cleanup_on_signals();
    benches::remove_stale(&h);
    for n in benches::sizes() {
        let set = CgroupSet::create(&h, n, benches::proc_every()).expect("make the bench cgroups");
        eprintln!(
            "set {}: {} cgroups, {} with a sleeping process in its own netns",
            set.parent,
            set.ids.len(),
            set.with_process
        );
        collector_core_sweeps(c, &set, n);
        cgroups_rs_sweeps(c, &set, n);
        floor(c, &set, n);
    }
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    set: &CgroupSet,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(set.ids.len() as u64));
    // A sweep over 1,000 cgroups takes long enough that one per sample is plenty.
    g.sampling_mode(SamplingMode::Flat);
    g
}

fn collector_core_sweeps(c: &mut Criterion, set: &CgroupSet, n: usize) {
    let mut g = group(c, "sweep", set);
    for (name, network, load, idle) in [
        ("collector-core", true, true, false),
        ("collector-core-idle", true, true, true),
        ("collector-core-files-only", false, false, false),
    ] {
        let (mut col, mut snap) = steady_collector(set, network, load, idle);
        if network {
            let own = snap
                .containers
                .iter()
                .filter(|c| c.stats.network.status == collector_core::NetworkStatus::Own)
                .count();
            let load = snap
                .containers
                .iter()
                .filter(|c| c.stats.load.is_some())
                .count();
            eprintln!(
                "collector-core: {own} containers with their own netns read, {load} with load"
            );
        }
        g.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                col.sweep_into(&mut snap);
                black_box(snap.containers.len())
            })
        });
    }
    let (mut col, mut snap) = steady_collector(set, true, true, false);
    g.bench_function(BenchmarkId::new("collector-core-rescan", n), |b| {
        b.iter(|| {
            col.rescan_soon();
            col.sweep_into(&mut snap);
            black_box(snap.containers.len())
        })
    });
    g.finish();
}

fn cgroups_rs_sweeps(c: &mut Criterion, set: &CgroupSet, n: usize) {
    let rels: Vec<&str> = set.ids.iter().map(|id| relative(id)).collect();
    // Check once that cgroups-rs finds the cgroups at all (it reads absent files as 0).
    let cg = Cgroup::load(hierarchies::auto(), rels[1]);
    let mem = cg
        .controller_of::<MemController>()
        .expect("cgroups-rs memory controller");
    assert_ne!(
        mem.memory_stat().limit_in_bytes,
        0,
        "cgroups-rs reads the bench cgroups"
    );
    let mut g = group(c, "sweep", set);
    g.bench_function(BenchmarkId::new("cgroups-rs", n), |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for rel in &rels {
                acc = acc.wrapping_add(cgroups_rs_read(hierarchies::auto(), rel));
            }
            acc
        })
    });
    let v1 = V1::new();
    g.bench_function(BenchmarkId::new("cgroups-rs-hier-reused", n), |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for rel in &rels {
                acc = acc.wrapping_add(cgroups_rs_read(Box::new(v1.clone()), rel));
            }
            acc
        })
    });
    g.finish();
}

fn floor(c: &mut Criterion, set: &CgroupSet, n: usize) {
    let mut floor = Floor::new(set).expect("open the floor files");
    let mut g = group(c, "floor", set);
    g.bench_function(BenchmarkId::new("pread-held-fd", n), |b| {
        b.iter(|| floor.pread_held())
    });
    g.bench_function(BenchmarkId::new("open-read-close", n), |b| {
        b.iter(|| floor.open_read_close())
    });
    g.bench_function(BenchmarkId::new("openat-held-dir", n), |b| {
        b.iter(|| floor.openat_held_dir())
    });
    g.bench_function(BenchmarkId::new("std-read-to-string", n), |b| {
        b.iter(|| floor.std_read_to_string())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets = all
}
criterion_main!(benches);
