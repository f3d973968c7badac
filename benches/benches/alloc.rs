//! Heap allocations and CPU time per container per steady-state sweep. A global allocator
//! counts calls (`alloc`, `alloc_zeroed`, `realloc`) and the bytes asked for; CPU time is the
//! thread's (`CLOCK_THREAD_CPUTIME_ID`), which other load on the machine inflates far less than
//! criterion's wall clock.
//!
//! For each set size: collector-core (everything, and files only), cgroups-rs (the same reads as
//! the sweep bench) and the three floors.
//! `CCOL_ALLOC_SITES=1` also prints where collector-core's allocations come from in one sweep
//! (a backtrace per allocation; slow, so use it with `CCOL_BENCH_SIZES=100`).
//!
//! Run: `cargo bench -p benches --bench alloc`. Needs root; skips otherwise.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use benches::{cgroups_rs_read, relative, steady_collector, CgroupSet, Floor};
use cgroups_rs::fs::hierarchies::{self, V1};

struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);
static SITES: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

thread_local! {
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize) {
    CALLS.fetch_add(1, Relaxed);
    BYTES.fetch_add(size as u64, Relaxed);
    if TRACE.load(Relaxed) {
        trace();
    }
}

/// Records the allocating site: the innermost collector_core frame and its caller.
fn trace() {
    let _ = IN_TRACE.try_with(|busy| {
        if busy.replace(true) {
            return;
        }
        let bt = std::backtrace::Backtrace::force_capture().to_string();
        let mut frames = Vec::new();
        let mut lines = bt.lines().peekable();
        while let Some(l) = lines.next() {
            let Some((_, name)) = l.trim().split_once(": ") else {
                continue;
            };
            if !name.starts_with("collector_core::") {
                continue;
            }
            let at = lines
                .peek()
                .and_then(|n| n.trim().strip_prefix("at "))
                .and_then(|p| p.rsplit_once("/src/").map(|(_, f)| f.to_string()))
                .unwrap_or_default();
            frames.push(format!(
                "{} ({at})",
                name.trim_start_matches("collector_core::")
            ));
            if frames.len() == 2 {
                break;
            }
        }
        if !frames.is_empty() {
            let key = frames.join(" <- ");
            let mut sites = SITES.lock().unwrap_or_else(|p| p.into_inner());
            match sites.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => sites.push((key, 1)),
            }
        }
        busy.set(false);
    });
}

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        System.realloc(p, l, new)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What one measured run cost: allocation calls, bytes asked for, and this thread's CPU time.
#[derive(Clone, Copy)]
struct Cost {
    calls: u64,
    bytes: u64,
    cpu_ns: u64,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What `f` costs. With `CCOL_BENCH_MARKS` set, the measured region is framed by two writes to
/// stderr, so an `strace -f` of the run can be cut into variants.
fn measure(label: &str, f: impl FnOnce()) -> Cost {
    let marks = std::env::var_os("CCOL_BENCH_MARKS").is_some();
    if marks {
        eprintln!("mark-begin {label}");
    }
    let (c0, b0, t0) = (CALLS.load(Relaxed), BYTES.load(Relaxed), thread_cpu_ns());
    f();
    let cost = Cost {
        calls: CALLS.load(Relaxed) - c0,
        bytes: BYTES.load(Relaxed) - b0,
        cpu_ns: thread_cpu_ns() - t0,
    };
    if marks {
        eprintln!("mark-end {label}");
    }
    cost
}

fn row(n: usize, variant: &str, sweeps: u64, cgroups: usize, c: Cost) {
    let per = (sweeps * cgroups as u64) as f64;
    println!(
        "| {n} | {variant} | {:.0} | {:.2} | {:.0} | {:.1} |",
        c.calls as f64 / sweeps as f64,
        c.calls as f64 / per,
        c.bytes as f64 / per,
        c.cpu_ns as f64 / per / 1000.0,
    );
}

fn main() {
    // `cargo bench -- --test` (CI's smoke run): one sweep per variant.
    let quick = std::env::args().any(|a| a == "--test");
    let h = match benches::preflight() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("alloc bench skipped: {why}");
            return;
        }
    };
    benches::cleanup_on_signals();
    benches::remove_stale(&h);
    let sweeps: u64 = if quick { 1 } else { 10 };
    let sites = std::env::var_os("CCOL_ALLOC_SITES").is_some_and(|v| v != "0");
    println!(
        "| N | variant | allocations per sweep | allocations per cgroup | bytes per cgroup | CPU us per cgroup |"
    );
    println!("|---|---|---|---|---|---|");
    for n in benches::sizes() {
        let set = CgroupSet::create(&h, n, benches::proc_every()).expect("make the bench cgroups");
        let cgroups = set.ids.len();

        for (variant, network, load) in [
            ("collector-core", true, true),
            ("collector-core-files-only", false, false),
        ] {
            let (mut col, mut snap) = steady_collector(&set, network, load);
            let cost = measure(variant, || {
                for _ in 0..sweeps {
                    col.sweep_into(&mut snap);
                }
            });
            row(n, variant, sweeps, cgroups, cost);
            if sites && network && load {
                TRACE.store(true, Relaxed);
                col.sweep_into(&mut snap);
                TRACE.store(false, Relaxed);
                let mut s = std::mem::take(&mut *SITES.lock().unwrap_or_else(|p| p.into_inner()));
                s.sort_by_key(|(_, k)| std::cmp::Reverse(*k));
                eprintln!("allocation sites in one sweep of {cgroups} cgroups:");
                for (site, k) in s.iter().take(20) {
                    eprintln!("{k:>7}  {site}");
                }
            }
        }

        let rels: Vec<&str> = set.ids.iter().map(|id| relative(id)).collect();
        let rs_sweeps = if quick { 1 } else { 3 };
        let cost = measure("cgroups-rs", || {
            for _ in 0..rs_sweeps {
                for rel in &rels {
                    std::hint::black_box(cgroups_rs_read(hierarchies::auto(), rel));
                }
            }
        });
        row(n, "cgroups-rs", rs_sweeps, cgroups, cost);
        let v1 = V1::new();
        let cost = measure("cgroups-rs-hier-reused", || {
            for _ in 0..rs_sweeps {
                for rel in &rels {
                    std::hint::black_box(cgroups_rs_read(Box::new(v1.clone()), rel));
                }
            }
        });
        row(n, "cgroups-rs-hier-reused", rs_sweeps, cgroups, cost);

        let mut floor = Floor::new(&set).expect("open the floor files");
        type Read = fn(&mut Floor) -> usize;
        for (variant, read) in [
            ("floor/pread-held-fd", Floor::pread_held as Read),
            ("floor/open-read-close", Floor::open_read_close),
            ("floor/std-read-to-string", Floor::std_read_to_string),
        ] {
            let cost = measure(variant, || {
                for _ in 0..sweeps {
                    std::hint::black_box(read(&mut floor));
                }
            });
            row(n, variant, sweeps, cgroups, cost);
        }
    }
}
