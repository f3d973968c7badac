//! Heap allocations and CPU time per container per steady-state sweep. A global allocator
//! counts calls (`alloc`, `alloc_zeroed`, `realloc`) and the bytes asked for; CPU time is the
//! thread's (`CLOCK_THREAD_CPUTIME_ID`), which other load on the machine inflates far less than
//! criterion's wall clock.
//!
//! For each set size: collector-core (everything, every file of every cgroup on every sweep;
//! the same with the default idle reads, where the set's sleeping cgroups read as idle; files
//! only; files plus network; files plus load), cgroups-rs (the same reads as the sweep bench) and the floors.
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

/// One variant: a name, how many passes over the set one run makes, and the run.
struct Variant<'a> {
    name: &'static str,
    passes: u64,
    run: Box<dyn FnMut() + 'a>,
    /// Before and after each measured run, unmeasured: a collector is made (and warmed up)
    /// for its runs only, so that each has the whole descriptor budget to itself.
    setup: Box<dyn FnMut() + 'a>,
    teardown: Box<dyn FnMut() + 'a>,
}

fn nothing<'a>() -> Box<dyn FnMut() + 'a> {
    Box::new(|| {})
}

fn main() {
    // `cargo bench -- --test` (CI's smoke run): one pass per variant, one round.
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
    let rs_sweeps: u64 = if quick { 1 } else { 3 };
    // CPU time is the least of this many rounds (variants interleaved), which keeps what other
    // work on the machine adds out of it; allocation counts are the same in every round.
    let rounds = if quick { 1 } else { 5 };
    let sites = std::env::var_os("CCOL_ALLOC_SITES").is_some_and(|v| v != "0");
    println!(
        "| N | variant | allocations per sweep | allocations per cgroup | bytes per cgroup | CPU us per cgroup (least of {rounds}) |"
    );
    println!("|---|---|---|---|---|---|");
    let fixed = fixed_cost(rounds);
    for n in benches::sizes() {
        let set = CgroupSet::create(&h, n, benches::proc_every()).expect("make the bench cgroups");
        let cgroups = set.ids.len();
        let mut variants: Vec<Variant> = Vec::new();

        for (name, network, load, idle) in [
            ("collector-core", true, true, false),
            ("collector-core-idle", true, true, true),
            ("collector-core-files-only", false, false, false),
            ("collector-core-network-only", true, false, false),
            ("collector-core-load-only", false, true, false),
        ] {
            if sites && network && load && !idle {
                let (mut col, mut snap) = steady_collector(&set, network, load, idle);
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
            let state = std::rc::Rc::new(std::cell::RefCell::new(None));
            let (made, used, gone) = (state.clone(), state.clone(), state);
            let set = &set;
            variants.push(Variant {
                name,
                passes: sweeps,
                setup: Box::new(move || {
                    *made.borrow_mut() = Some(steady_collector(set, network, load, idle));
                }),
                run: Box::new(move || {
                    let mut st = used.borrow_mut();
                    let (col, snap) = st.as_mut().expect("set up");
                    for _ in 0..sweeps {
                        col.sweep_into(snap);
                    }
                }),
                teardown: Box::new(move || {
                    gone.borrow_mut().take();
                }),
            });
        }

        let rels: Vec<&str> = set.ids.iter().map(|id| relative(id)).collect();
        let rels2 = rels.clone();
        variants.push(Variant {
            name: "cgroups-rs",
            passes: rs_sweeps,
            run: Box::new(move || {
                for _ in 0..rs_sweeps {
                    for rel in &rels {
                        std::hint::black_box(cgroups_rs_read(hierarchies::auto(), rel));
                    }
                }
            }),
            setup: nothing(),
            teardown: nothing(),
        });
        let v1 = V1::new();
        variants.push(Variant {
            name: "cgroups-rs-hier-reused",
            passes: rs_sweeps,
            run: Box::new(move || {
                for _ in 0..rs_sweeps {
                    for rel in &rels2 {
                        std::hint::black_box(cgroups_rs_read(Box::new(v1.clone()), rel));
                    }
                }
            }),
            setup: nothing(),
            teardown: nothing(),
        });

        // One set of floor files (4 fds per cgroup) for the four floor variants.
        eprintln!(
            "open fds before the floor: {}, held by collector-core: {}",
            std::fs::read_dir("/proc/self/fd")
                .map(|d| d.count())
                .unwrap_or(0),
            collector_core::FdBudget::process_default().held()
        );
        let floor = std::rc::Rc::new(std::cell::RefCell::new(
            Floor::new(&set).expect("open the floor files"),
        ));
        type Read = fn(&mut Floor) -> usize;
        for (name, read) in [
            ("floor/pread-held-fd", Floor::pread_held as Read),
            ("floor/open-read-close", Floor::open_read_close),
            ("floor/openat-held-dir", Floor::openat_held_dir),
            ("floor/std-read-to-string", Floor::std_read_to_string),
        ] {
            let floor = floor.clone();
            variants.push(Variant {
                name,
                passes: sweeps,
                run: Box::new(move || {
                    let mut floor = floor.borrow_mut();
                    for _ in 0..sweeps {
                        std::hint::black_box(read(&mut floor));
                    }
                }),
                setup: nothing(),
                teardown: nothing(),
            });
        }

        let mut best: Vec<Option<Cost>> = vec![None; variants.len()];
        for _ in 0..rounds {
            for (v, best) in variants.iter_mut().zip(best.iter_mut()) {
                (v.setup)();
                let c = measure(v.name, &mut v.run);
                (v.teardown)();
                *best = Some(match *best {
                    Some(b) if b.cpu_ns <= c.cpu_ns => b,
                    _ => c,
                });
            }
        }
        for (v, b) in variants.iter().zip(best) {
            row(n, v.name, v.passes, cgroups, b.expect("at least one round"));
        }
        net_dev_floor(&set.pids(), rounds);
    }
    println!(
        "\nFixed part of a collector-core sweep (no cgroup matched; machine figures only), least of \
         {rounds} rounds: {:.0} us wall, {:.0} us CPU of the sweeping thread, {:.0} allocations.",
        fixed.0, fixed.1, fixed.2
    );
}

/// `/proc/<pid>/net/dev` of each of the set's processes (each in its own namespace), the way
/// the collector reads it: `openat` on the held `/proc/<pid>` each time, against the file
/// held open and read with `pread` after a liveness check (`faccessat` of `cgroup`).
fn net_dev_floor(pids: &[u32], rounds: usize) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::FileExt;
    let dirs: Vec<OwnedFd> = pids
        .iter()
        .filter_map(|p| {
            std::fs::File::open(format!("/proc/{p}"))
                .ok()
                .map(OwnedFd::from)
        })
        .collect();
    let open = |d: &OwnedFd| {
        // SAFETY: a NUL-terminated literal and a descriptor we hold; the result is checked.
        let fd = unsafe { libc::openat(d.as_raw_fd(), c"net/dev".as_ptr(), libc::O_RDONLY) };
        // SAFETY: a fresh descriptor nothing else owns.
        (fd >= 0).then(|| std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    };
    let held: Vec<std::fs::File> = dirs.iter().filter_map(open).collect();
    if dirs.is_empty() || held.len() != dirs.len() {
        eprintln!("net/dev floor skipped: the set's processes could not all be opened");
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let (mut opened, mut preads) = (u64::MAX, u64::MAX);
    for _ in 0..rounds {
        let c = measure("net-dev-open", || {
            for d in &dirs {
                let mut f = open(d).expect("net/dev");
                while std::io::Read::read(&mut f, &mut buf).is_ok_and(|n| n > 0) {}
            }
        });
        opened = opened.min(c.cpu_ns);
        let c = measure("net-dev-pread", || {
            for (d, f) in dirs.iter().zip(&held) {
                // SAFETY: as above.
                let alive =
                    unsafe { libc::faccessat(d.as_raw_fd(), c"cgroup".as_ptr(), libc::F_OK, 0) };
                assert_eq!(alive, 0);
                let mut at = 0;
                while let Ok(n @ 1..) = f.read_at(&mut buf, at) {
                    at += n as u64;
                }
            }
        });
        preads = preads.min(c.cpu_ns);
    }
    let per = |ns: u64| ns as f64 / 1000.0 / dirs.len() as f64;
    println!(
        "\n`/proc/<pid>/net/dev` of {} processes, each in its own namespace, least of {rounds}: \
         openat on the held /proc/<pid> + read + close {:.1} us, held file: faccessat + pread \
         {:.1} us.",
        dirs.len(),
        per(opened),
        per(preads)
    );
}

/// A sweep that matches no cgroup: what every sweep costs before the first container
/// (wall us, CPU us, allocations per sweep).
fn fixed_cost(rounds: usize) -> (f64, f64, f64) {
    let config = collector_core::Config {
        include: vec!["/ccol-bench-matches-nothing".into()],
        watch: false,
        rescan_interval: std::time::Duration::from_secs(24 * 3600),
        ..collector_core::Config::default()
    };
    let mut col = collector_core::Collector::new(config).expect("collector");
    let mut snap = collector_core::Snapshot::default();
    for _ in 0..3 {
        col.sweep_into(&mut snap);
    }
    let sweeps = 20;
    let mut best = (f64::MAX, f64::MAX, 0.0);
    for _ in 0..rounds {
        let started = std::time::Instant::now();
        let c = measure("collector-core-empty", || {
            for _ in 0..sweeps {
                col.sweep_into(&mut snap);
            }
        });
        let wall = started.elapsed().as_secs_f64() * 1e6 / sweeps as f64;
        best.0 = best.0.min(wall);
        best.1 = best.1.min(c.cpu_ns as f64 / 1000.0 / sweeps as f64);
        best.2 = c.calls as f64 / sweeps as f64;
    }
    best
}
